"""Code the tests share (stores, worlds, readers): imported by test files, never a test file itself."""
