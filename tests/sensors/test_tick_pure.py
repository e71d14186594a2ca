"""The tick logic is Dagster-free, and the sensor sets up the per-dataset pool for the user."""

import subprocess
import sys

import dagster as dg

from ragflow_dagster.assets import build_ragflow_ingestion
from ragflow_dagster.sensors import build_ragflow_reconcile_schedule, build_ragflow_sensor


def test_the_tick_modules_import_no_dagster():
    code = (
        "import sys\n"
        "import ragflow_dagster.sensors.tick, ragflow_dagster.sensors.tick_files\n"
        "import ragflow_dagster.sensors.cursor, ragflow_dagster.partitions\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_shared'))\n"
        "print(len(bad), bad[:3])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.startswith("0 "), out.stdout


def test_sensor_and_schedule_give_the_dataset_pool_a_limit_of_one(tmp_path):
    (tmp_path / "a.md").write_text("a")
    ing = build_ragflow_ingestion(source=str(tmp_path), dataset="Pooled KB")
    assert ing.assets[1].op.pool == ing.pool == "ragflow_pooled_kb"
    with dg.instance_for_test() as instance:
        assert ing.pool not in instance.event_log_storage.get_concurrency_keys()
        build_ragflow_sensor(ing)(dg.build_sensor_context(instance=instance))
        info = instance.event_log_storage.get_concurrency_info(ing.pool)
        assert info.slot_count == 1
        instance.event_log_storage.set_concurrency_slots(ing.pool, 3)  # a user's own limit stays
        build_ragflow_reconcile_schedule(ing).evaluate_tick(
            dg.build_schedule_context(instance=instance)
        )
        assert instance.event_log_storage.get_concurrency_info(ing.pool).slot_count == 3
