"""Benchmarks of ragflow-dagster against the alternatives (``make bench``).

Each benchmark measures our sync side by side with what a user would otherwise run, in one
process run on the same machine state, and reports ratios:

* P1 initial sync vs the ragflow-sdk loop and vs bare concurrent multipart POSTs;
* P2 no-op resync vs a bare ``os.scandir`` walk plus one paged listing;
* P3 sensor tick on 100k local files and on 100k S3 keys (moto) vs a bare ``list_objects_v2`` loop;
* P4 peak RSS of a process syncing one 1 GiB file;
* P5 Dagster runs launched for a 10k-file initial sync through the sensor.

Run ``python -m benchmarks.run --help``.
"""
