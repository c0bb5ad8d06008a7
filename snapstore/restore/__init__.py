"""Getting the data back: restore a snapshot (or an exported folder) into Airtable, revert a table in
place, and import an exported folder into a store.

Restore into new tables (``restore``), in the order the API allows (reference §6.6):

1. tables with their writable, non-link fields (primary first, options carried over);
2. link fields, one side per pair (the inverse appears by itself and is renamed to its old name);
3. records in batches of 10 without link and attachment cells (``typecast`` so select options
   missing from the schema are created), old → new record ids journaled as each batch completes;
4. link cells PATCHed with the ids remapped;
5. attachments uploaded through ``uploadAttachment`` (≤ 5 MB each; larger ones are written to a
   folder and reported for a manual upload).

Computed fields (formula, rollup, lookup, count, autoNumber, created/modified time and by, button,
AI, sync source, manual sort) cannot be created through the API: they are reported with their
definitions, and with ``keep_computed_values`` their last values are kept in a text field.

Everything that was written is recorded in a journal (SQLite, ``restores/<id>.sqlite`` in the store,
or beside an exported folder) *before* moving on, with an intent row written before each create, so
a restore that stops anywhere continues without duplicates, and a finished one is not run again by
accident.

The package, by concern: ``sources`` (snapshot, folder) and ``folder`` (reading an exported folder),
``importer`` (folder → snapshot), ``plan``, ``journal``, ``values``, ``report``, ``run`` (restore into
new tables), ``revert`` (in place). The Airtable write client is
:mod:`snapstore.source.writer_client`, beside the read client.
"""

from snapstore.fieldtypes import COMPUTED_TYPES, CREATABLE_TYPES
from snapstore.restore.errors import RestoreError, SimulatedCrash, TamperedExport
from snapstore.restore.folder import verify_folder
from snapstore.restore.importer import import_folder
from snapstore.restore.journal import RestoreJournal, journal_id
from snapstore.restore.plan import (
    BATCH,
    UPLOAD_LIMIT,
    WHY_COMPUTED,
    WRITE_OPTIONS,
    FieldPlan,
    RestorePlan,
    RestoreTablePlan,
    make_plan,
)
from snapstore.restore.report import RestoreReport, TableReport
from snapstore.restore.revert import RevertPlan, plan_revert, revert
from snapstore.restore.run import Restore, restore
from snapstore.restore.sources import FolderSource, SnapshotSource, open_source
from snapstore.restore.values import compare_tables
from snapstore.source.writer_client import AirtableWriter, WriteFailed

__all__ = [
    "AirtableWriter", "BATCH", "COMPUTED_TYPES", "CREATABLE_TYPES", "FieldPlan", "FolderSource", "SimulatedCrash",
    "RestoreJournal", "RestorePlan", "RestoreReport", "Restore", "RestoreError", "RevertPlan", "SnapshotSource", "RestoreTablePlan",
    "TableReport", "TamperedExport", "UPLOAD_LIMIT", "WHY_COMPUTED", "WRITE_OPTIONS", "WriteFailed",
    "compare_tables", "import_folder", "journal_id", "make_plan", "open_source", "plan_revert", "restore",
    "revert", "verify_folder",
]
