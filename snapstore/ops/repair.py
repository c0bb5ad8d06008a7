"""repair: write lost commit objects again from the catalog's copy of their documents.

A commit object gone without a forget record (a sync tool that deleted ``snapshots/``, a bucket
lifecycle rule, a hand that slipped) is damage: prune and forget refuse to act while one is lost,
since its data would look unused. Every catalog row holds its commit's document, so the commit
can be written again. A plain store's commit comes back under its own id (the document encodes
to the same bytes, unless ``tag`` changed its tags since); an encrypted store seals it with a
fresh nonce, so it comes back under a new id, with the same time, bases, tables and manifests.

Then a store index covering every commit under its name now is written (so a rebuilt catalog
finds their data where it is today, whatever a prune moved since they were made), and the
catalog is rebuilt from the store.

A lost commit only the newest store index names (no catalog holds its document: an S3 cache
that was rebuilt, a catalog that was deleted) cannot be written again; ``forget_lost`` records
it as forgotten, so that prune may go on (its data goes at the next prune).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from snapstore.ops.retention import write_store_index
from snapstore.store import Store, objects
from snapstore.store import inventory as inv

log = logging.getLogger("snapstore.ops.repair")


@dataclass
class RepairResult:
    dry_run: bool
    #: lost commit id -> the id it was written again under
    recovered: dict[str, str] = field(default_factory=dict)
    #: lost commits no catalog row holds the document of
    unrecoverable: list[str] = field(default_factory=list)
    #: of those, the ones recorded as forgotten (``forget_lost``)
    forgotten: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not [c for c in self.unrecoverable if c not in self.forgotten]

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "recovered": [{"lost": k[:8], "as": v[:8]} for k, v in self.recovered.items()],
                "unrecoverable": [c[:8] for c in self.unrecoverable], "forgotten": [c[:8] for c in self.forgotten],
                "ok": self.ok}


def repair(store: Store, *, forget_lost: bool = False, dry_run: bool = False) -> RepairResult:
    """Write every lost commit the catalog holds again (under the store's exclusive lock)."""
    res = RepairResult(dry_run)
    with store.lock("repair"):
        docs = {cid: doc for _seq, cid, doc in store.catalog.snapshot_docs()}
        lost = inv.lost_commits(store.backend, docs)
        res.unrecoverable = [c for c in lost if c not in docs]
        encoded = {cid: objects.encode_commit(json.loads(docs[cid]), store.box) for cid in lost if cid in docs}
        res.recovered = {cid: name for cid, (name, _data) in encoded.items()}
        if forget_lost:
            res.forgotten = list(res.unrecoverable)
        if dry_run or not (encoded or res.forgotten):
            return res
        for cid, (name, data) in encoded.items():
            store.backend.put(objects.snapshot_key(name), data)
            log.warning("snapshot %s written again as %s from the catalog", cid[:8], name[:8])
        renamed = [cid for cid, name in res.recovered.items() if name != cid]
        # the lost ids that now live under another name are forgotten: only their new name stands
        inv.write_forget_records(store.backend, renamed + res.forgotten)
        if encoded:
            index = write_store_index(store, rename=res.recovered)
            inv.delete_indexes_except(store.backend, index)
            store.rebuild_catalog()
    return res
