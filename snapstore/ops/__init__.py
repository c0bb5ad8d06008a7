"""The operations: what each verb does to a store, as library calls (snapshot, diff, find,
retention, prune, verify, stats, check). They sit between the base modules (``store``,
``source``, ``selection``, ``errors``) and the CLI (``commands``): they may import the first,
never the second; the CLI's rendering lives in ``commands``."""
