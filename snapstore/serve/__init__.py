"""``snapstore serve``: one long-running process per store, with the schedules of the config file
(schedule.py) and a local web page (app.py, behind security.py) over the same library calls as the
CLI (views.py)."""
