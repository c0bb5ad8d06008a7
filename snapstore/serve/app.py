"""serve's web page: Starlette routes rendering Jinja2 templates on the server (no page needs a
script to show its data), behind :mod:`snapstore.serve.security`.

Reads go through one Store opened at start (a lock keeps one page at a time on it: DuckDB
connections and the blob reader are not meant to be shared mid-query). Anything that writes (a
restore, an export to download) runs the CLI in a child process, as the schedules do: the same
code, log, ledger record and notifications as from a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import shutil
import subprocess
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from snapstore.errors import SnapstoreError
from snapstore.serve import views
from snapstore.serve.security import Gate, GateMiddleware

HERE = Path(__file__).parent
EXPORT_FORMATS = ("json", "csv", "ndjson", "yaml", "sqlite", "parquet")


@dataclass
class Context:
    """What the pages need of the running serve process."""

    store: Any
    location: str
    gate: Gate
    budget: int | None = None
    jobs: list = field(default_factory=list)
    allow_restore: bool = False
    argv_for: Any = None  # CLI args -> the child's argv (schedule.cli_argv with the store and config)
    env: dict | None = None
    run_job: Any = None  # job -> None: start a scheduled run now (in the scheduler's thread)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["ago"] = views.ago
    env.filters["cell"] = views.cell
    env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    env.filters["iso"] = lambda t: t.strftime("%Y-%m-%d %H:%M UTC") if t else ""
    return env


def build(ctx: Context, on_start=None, on_stop=None) -> Starlette:
    """The app; ``on_start``/``on_stop``: the scheduler's start and stop (uvicorn's lifespan)."""
    jenv = _env()

    def page(request: Request, name: str, status: int = 200, **data) -> HTMLResponse:
        html = jenv.get_template(name).render(request=request, csrf=ctx.gate.csrf, store=ctx.location,
                                              allow_restore=ctx.allow_restore, **data)
        return HTMLResponse(html, status_code=status)

    async def locked(fn, *a, **kw):
        def run():
            with ctx.lock:
                # one catalog connection for the whole page (a DuckDB open costs ~85 ms; a diff page
                # made six), closed at its end: an open one would block a scheduled run's writes
                ctx.store.catalog.pin()
                try:
                    return fn(*a, **kw)
                finally:
                    ctx.store.catalog.unpin()
        return await asyncio.to_thread(run)

    def error(request: Request, e: Exception, status: int = 400) -> HTMLResponse:
        return page(request, "error.html", status=status, message=str(e) or type(e).__name__)

    async def form_checked(request: Request):
        form = await request.form()
        if not ctx.gate.csrf_ok(form.get("csrf")):
            return None
        return form

    async def dashboard(request: Request):
        d = await locked(views.dashboard, ctx.store, ctx.budget, ctx.jobs)
        return page(request, "dashboard.html", d=d, title="Dashboard")

    async def timeline(request: Request):
        base = request.query_params.get("base") or None
        pts = await locked(views.timeline, ctx.store, base)
        snaps = await locked(ctx.store.list_snapshots)
        bases = {b.base_id: b.name for s in snaps for b in s.bases}
        return page(request, "timeline.html", points=list(reversed(pts)), chart=views.chart(pts), bases=bases,
                    base=base, title="Timeline")

    async def diff(request: Request):
        q = request.query_params
        snaps = await locked(ctx.store.list_snapshots)
        if len(snaps) < 2 and not (q.get("a") and q.get("b")):
            return page(request, "error.html", message="a diff needs two snapshots; the store has "
                        f"{len(snaps)}", title="Diff")
        a, b = q.get("a") or snaps[1].full_id, q.get("b") or snaps[0].full_id
        try:
            p = await locked(views.diff_page, ctx.store, a, b, int(q.get("page") or 1))
        except (SnapstoreError, ValueError) as e:
            return error(request, e)
        return page(request, "diff.html", p=p, snaps=snaps, a=a, b=b, title="Diff")

    async def diff_csv(request: Request):
        from snapstore.ops.diff import diff_snapshots

        q = request.query_params
        try:
            d = await locked(diff_snapshots, ctx.store, q.get("a") or "latest~1", q.get("b") or "latest",
                             fields=True)
        except SnapstoreError as e:
            return error(request, e)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["base", "table", "record_id", "record", "change", "field", "old", "new"])
        for td in d.tables:
            for kind in ("added", "removed", "changed"):
                for rc in getattr(td, kind):
                    if kind == "changed" and rc.fields:
                        for fc in rc.fields:
                            w.writerow([td.base_name, td.name, rc.record_id, rc.label or "", kind, fc.label,
                                        _csv_value(fc.old), _csv_value(fc.new)])
                    else:
                        w.writerow([td.base_name, td.name, rc.record_id, rc.label or "", kind, "", "", ""])
        name = f"diff-{d.a.id}-{d.b.id}.csv"
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def record(request: Request):
        from snapstore.ops.diff import history
        from snapstore.ops.find import stored_record

        rid = request.path_params["rid"]

        def gather():
            versions = history(ctx.store, rid)
            last = versions[-1]
            current = stored_record(ctx.store, last.last, rid)
            comments = ctx.store.comments(last.last, last.base_id, last.table_id).get(rid) or []
            return versions, current, comments

        try:
            versions, current, comments = await locked(gather)
        except SnapstoreError as e:
            return error(request, e, 404)
        links = sorted({v for vals in current.fields.values() if isinstance(vals, list) for v in vals
                        if isinstance(v, str) and v.startswith("rec") and len(v) == 17})
        return page(request, "record.html", rid=rid, versions=list(reversed(versions)), current=current,
                    comments=comments, links=links, title=f"Record {rid}")

    async def search(request: Request):
        from snapstore.ops.find import find

        q = (request.query_params.get("q") or "").strip()
        hits, more = [], False
        if q:
            def run():
                out = []
                for h in find(ctx.store, q, everywhere=True):
                    out.append(h)
                    if len(out) > 100:
                        break
                return out
            try:
                hits = await locked(run)
            except SnapstoreError as e:
                return error(request, e)
            more, hits = len(hits) > 100, hits[:100]
        return page(request, "search.html", q=q, hits=hits, more=more, title="Search")

    async def export_zip(request: Request):
        snap = request.path_params["snap"]
        fmt = request.query_params.get("format") or "json"
        if fmt not in EXPORT_FORMATS:
            return PlainTextResponse(f"unknown format {fmt!r}\n", status_code=400)
        tmp = Path(tempfile.mkdtemp(prefix="snapstore-serve-export-"))
        code, err = await asyncio.to_thread(_cli, ctx, ["export", snap, "--format", fmt, "--out", str(tmp / "out"),
                                                        "-q"])
        if code not in (0, 3):  # 3: a partial snapshot exports what it holds (its report says what is missing)
            shutil.rmtree(tmp, ignore_errors=True)
            return error(request, SnapstoreError(err or f"export failed (exit {code})"))
        zpath = tmp / "export.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted((tmp / "out").rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(tmp / "out"))
        return FileResponse(zpath, filename=f"snapstore-{snap[:8]}-{fmt}.zip", media_type="application/zip",
                            background=BackgroundTask(shutil.rmtree, tmp, True))

    def restore_step(done: bool):
        """The plan (a dry run, shown as a table with a confirmation), then the run and its report."""
        async def step(request: Request):
            if not ctx.allow_restore:
                return PlainTextResponse("restore is off: start serve with --allow-restore\n", status_code=403)
            form = await form_checked(request)
            if form is None:
                return PlainTextResponse("403: missing or wrong CSRF token\n", status_code=403)
            args = _revert_args(form)
            if isinstance(args, str):
                return error(request, SnapstoreError(args))
            extra = ["--yes", "--json"] if done else ["--dry-run", "--json"]
            code, out, err = await asyncio.to_thread(_cli_json, ctx, [*args, *extra])
            if out is None or not done and code != 0:
                return error(request, SnapstoreError(err or f"the restore failed (exit {code})"))
            return page(request, "restore.html", plan=out, form=dict(form), done=done, code=code, title="Restore")
        return step

    async def run_now(request: Request):
        form = await form_checked(request)
        if form is None:
            return PlainTextResponse("403: missing or wrong CSRF token\n", status_code=403)
        try:
            job = ctx.jobs[int(request.path_params["n"])]
        except (ValueError, IndexError):
            return PlainTextResponse("404: no such schedule\n", status_code=404)
        if ctx.run_job is not None and not job.running:
            ctx.run_job(job)
        return RedirectResponse("/", status_code=303)

    async def not_found(request: Request, exc):
        return PlainTextResponse("404: no such page\n", status_code=404)

    routes = [
        Route("/", dashboard),
        Route("/timeline", timeline),
        Route("/diff", diff),
        Route("/diff.csv", diff_csv),
        Route("/record/{rid}", record),
        Route("/search", search),
        Route("/export/{snap}.zip", export_zip),
        Route("/run/{n}", run_now, methods=["POST"]),
        Route("/restore/plan", restore_step(False), methods=["POST"]),
        Route("/restore/run", restore_step(True), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if on_start:
            on_start()
        try:
            yield
        finally:
            if on_stop:
                await asyncio.to_thread(on_stop)

    app = Starlette(routes=routes, exception_handlers={404: not_found}, lifespan=lifespan)
    app.add_middleware(GateMiddleware, gate=ctx.gate)
    return app


def _csv_value(v: Any) -> str:
    return "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _revert_args(form) -> list[str] | str:
    snap, base, table = form.get("snapshot"), form.get("base"), form.get("table")
    records = [r for r in form.getlist("record") if r]
    if not (snap and base and table):
        return "a restore needs a snapshot, a base and a table"
    args = ["restore", str(snap), "--revert", "--base", str(base), "--table", str(table)]
    for r in records:
        args += ["--record", str(r)]
    return args


def _cli(ctx: Context, args: list[str]) -> tuple[int, str]:
    r = subprocess.run(ctx.argv_for(args), env=ctx.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    return r.returncode, (lines[-1].removeprefix("Error: ") if lines else "")


def _cli_json(ctx: Context, args: list[str]) -> tuple[int, Any, str]:
    r = subprocess.run(ctx.argv_for(args), env=ctx.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    try:
        doc = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "error" in doc and len(doc) == 1:
        return r.returncode, None, doc["error"].get("message", "")
    return r.returncode, doc, (lines[-1].removeprefix("Error: ") if lines else "")


__all__ = ["Context", "build"]
