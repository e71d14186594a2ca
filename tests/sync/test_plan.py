"""The planner is pure: every case is decided here without a server."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from ragflow_dagster.sources.base import SourceEntry
from ragflow_dagster.sync.identity import document_name, managed_meta, upload_name
from ragflow_dagster.sync.plan import (
    Adopt,
    Delete,
    Move,
    PlanOptions,
    Relabel,
    Reparse,
    Replace,
    Unchanged,
    Upload,
    plan_sync,
)

_ids = iter(range(10**9))


@dataclass
class Doc:
    name: str
    size: int = 10
    run: str = "DONE"
    chunk_count: int = 1
    meta_fields: dict[str, Any] = field(default_factory=dict)
    create_time: int = 0
    chunk_method: str = "naive"
    parser_config: dict[str, Any] = field(default_factory=dict)
    progress_msg: str = ""
    process_begin_at: str | None = None
    id: str = field(default_factory=lambda: f"doc{next(_ids)}")


def entry(path: str, sha: str | None = "s1", *, size: int = 10, token: str = "t1") -> SourceEntry:
    return SourceEntry(path=path, size=size, modified=0.0, change_token=token, sha256=sha)


def managed(
    path: str, sha: str = "s1", *, size: int = 10, token: str = "t1", run: str = "DONE", **kw: Any
) -> Doc:
    meta = managed_meta(
        source_uri=f"file:///root/{path}", path=path, sha256=sha, size=size, change_token=token
    )
    return Doc(name=document_name(path), size=size, run=run, meta_fields=meta, **kw)


def kinds(plan) -> list[str]:
    return sorted(a.kind for a in plan.actions)


def test_new_file_is_uploaded():
    plan = plan_sync([entry("a.txt")], [])
    assert [type(a) for a in plan.actions] == [Upload]
    assert plan.actions[0].path == "a.txt"


def test_unchanged_file_is_left_alone():
    doc = managed("a.txt")
    plan = plan_sync([entry("a.txt")], [doc])
    assert plan.actions == (Unchanged(path="a.txt", doc_id=doc.id),)
    assert plan.is_noop


def test_touched_file_with_same_content_is_relabelled_not_uploaded():
    doc = managed("a.txt", token="old")
    plan = plan_sync([entry("a.txt", token="new")], [doc])
    assert plan.actions == (Relabel(entry=entry("a.txt", token="new"), doc_id=doc.id),)


def test_changed_content_is_replaced_keeping_the_old_ids_for_later():
    old = managed("a.txt", sha="old")
    plan = plan_sync([entry("a.txt", sha="new")], [old])
    assert plan.actions == (Replace(entry=entry("a.txt", sha="new"), old_ids=(old.id,)),)


def test_move_is_recognised_by_sha_and_not_reuploaded():
    doc = managed("old/a.txt", sha="x")
    plan = plan_sync([entry("new/a.txt", sha="x")], [doc])
    assert plan.actions == (
        Move(entry=entry("new/a.txt", sha="x"), doc_id=doc.id, from_path="old/a.txt"),
    )


def test_a_copy_uploads_while_one_path_takes_the_moved_document():
    doc = managed("old.txt", sha="x")
    plan = plan_sync([entry("b.txt", sha="x"), entry("c.txt", sha="x")], [doc])
    assert kinds(plan) == ["move", "upload"]
    move = plan.of_kind("move")[0]
    assert move.doc_id == doc.id
    assert not plan.of_kind("delete")


def test_same_content_still_present_at_old_path_is_a_copy_not_a_move():
    doc = managed("a.txt", sha="x")
    plan = plan_sync([entry("a.txt", sha="x"), entry("b.txt", sha="x")], [doc])
    assert kinds(plan) == ["unchanged", "upload"]


def test_removed_file_is_deleted():
    keep = [managed(f"k{i}.txt") for i in range(3)]
    gone = managed("gone.txt")
    plan = plan_sync([entry(f"k{i}.txt") for i in range(3)], [*keep, gone])
    deletes = plan.of_kind("delete")
    assert deletes == [Delete(path="gone.txt", doc_ids=(gone.id,), reason="removed")]


def test_no_removed_deletes_after_an_incomplete_listing():
    docs = [managed("a.txt"), managed("gone.txt")]
    plan = plan_sync([entry("a.txt")], docs, PlanOptions(listing_complete=False))
    assert not plan.of_kind("delete")


def test_nothing_is_deleted_under_a_prefix_that_could_not_be_listed():
    docs = [managed("a.txt"), managed("b.txt"), managed("locked/x.txt"), managed("gone.txt")]
    plan = plan_sync(
        [entry("a.txt"), entry("b.txt")], docs, PlanOptions(unlisted_prefixes=("locked",))
    )
    assert [d.path for d in plan.of_kind("delete")] == ["gone.txt"]


def test_mass_delete_guard_withholds_and_explains():
    docs = [managed(f"f{i}.txt") for i in range(10)]
    plan = plan_sync([entry("f0.txt")], docs)
    assert not plan.of_kind("delete")
    assert plan.guard_refused
    assert "9 of 10" in plan.guard_message
    assert sum(len(d.doc_ids) for d in plan.withheld_deletes) == 9


def test_empty_or_unmounted_source_never_wipes_the_dataset():
    docs = [managed(f"f{i}.txt") for i in range(3)]
    plan = plan_sync([], docs)
    assert plan.guard_refused and not plan.of_kind("delete")


def test_mass_delete_allowed_explicitly():
    docs = [managed(f"f{i}.txt") for i in range(10)]
    plan = plan_sync([], docs, PlanOptions(allow_mass_delete=True))
    assert len(plan.of_kind("delete")) == 10 and not plan.guard_refused


def test_guard_threshold_is_configurable():
    docs = [managed(f"f{i}.txt") for i in range(10)]
    entries = [entry(f"f{i}.txt") for i in range(7)]
    assert plan_sync(entries, docs).of_kind("delete")
    assert plan_sync(entries, docs, PlanOptions(max_delete_fraction=0.2)).guard_refused


def test_delete_removed_off_keeps_documents():
    docs = [managed("a.txt"), managed("gone.txt"), managed("b.txt")]
    plan = plan_sync([entry("a.txt"), entry("b.txt")], docs, PlanOptions(delete_removed=False))
    assert not plan.of_kind("delete")


def test_unmanaged_documents_are_never_touched():
    manual = Doc(name="a.txt", size=10, run="DONE")  # a user's own upload, same name and size
    unparsed = Doc(name="a(1).txt", size=10, run="UNSTART", chunk_count=0)  # theirs, unparsed
    other = Doc(name="other.pdf", run="UNSTART", chunk_count=0)  # unknown path
    plan = plan_sync([entry("a.txt")], [manual, unparsed, other])
    assert kinds(plan) == ["upload"]


def leftover(path: str, *, suffix: str = "", create_time: int = 0) -> Doc:
    """An unlabelled document named with the upload mark (an interrupted upload of ours)."""
    stem, _dot, ext = upload_name(path).rpartition(".")
    return Doc(name=f"{stem}{suffix}.{ext}", run="UNSTART", chunk_count=0, create_time=create_time)


def test_marked_leftover_of_interrupted_upload_is_adopted_with_proof():
    left = leftover("dir/a.txt")
    plan = plan_sync([entry("dir/a.txt")], [left])
    assert plan.actions == (Adopt(entry=entry("dir/a.txt"), doc_id=left.id, doc_name=left.name),)


def test_leftover_is_adopted_whatever_its_size_since_content_is_proven():
    left = leftover("a.txt")
    left.size = 99
    assert kinds(plan_sync([entry("a.txt")], [left])) == ["adopt"]


def test_renamed_leftover_beside_a_good_document_is_deleted_as_stray():
    good = managed("a.txt")
    left = leftover("a.txt", suffix="(1)")
    plan = plan_sync([entry("a.txt")], [good, left])
    assert Delete(path="a.txt", doc_ids=(left.id,), reason="stray") in plan.actions
    assert Unchanged(path="a.txt", doc_id=good.id) in plan.actions


def test_leftover_of_interrupted_replace_is_adopted_and_replaces_the_old():
    old = managed("a.txt", sha="old")
    left = leftover("a.txt")
    plan = plan_sync([entry("a.txt", sha="new")], [old, left])
    assert plan.actions == (
        Adopt(
            entry=entry("a.txt", sha="new"), doc_id=left.id, old_ids=(old.id,), doc_name=left.name
        ),
    )


def test_two_leftovers_prove_the_oldest_and_delete_the_rest():
    a = leftover("a.txt", create_time=1)
    b = leftover("a.txt", suffix="(1)", create_time=2)
    plan = plan_sync([entry("a.txt")], [b, a])
    assert Adopt(entry=entry("a.txt"), doc_id=a.id, doc_name=a.name) in plan.actions
    assert Delete(path="a.txt", doc_ids=(b.id,), reason="stray") in plan.actions


def test_leftover_whose_file_is_gone_is_deleted_only_by_a_full_complete_run():
    left = leftover("gone.txt")
    plan = plan_sync([entry("a.txt")], [left])
    assert Delete(path="gone.txt", doc_ids=(left.id,), reason="stray") in plan.actions
    scoped = plan_sync([entry("a.txt")], [left], PlanOptions(in_scope=lambda p: True))
    assert not scoped.of_kind("delete")
    partial = plan_sync([entry("a.txt")], [left], PlanOptions(listing_complete=False))
    assert not partial.of_kind("delete")


def test_long_path_leftover_is_found_by_its_shortened_name():
    path = "deep/" + "x" * 300 + ".txt"
    left = Doc(name=upload_name(path), size=10, run="UNSTART", chunk_count=0)
    assert len(left.name.encode()) <= 255
    plan = plan_sync([entry(path)], [left])
    assert kinds(plan) == ["adopt"]


def test_adoption_can_be_switched_off():
    left = leftover("a.txt")
    plan = plan_sync([entry("a.txt")], [left], PlanOptions(adopt_interrupted=False))
    assert kinds(plan) == ["upload"]


def test_hand_edited_label_is_proven_before_it_is_trusted():
    doc = managed("a.txt")
    doc.meta_fields["sha256"] = "s1-edited"
    plan = plan_sync([entry("a.txt")], [doc])
    assert plan.actions == (
        Adopt(
            entry=entry("a.txt"),
            doc_id=doc.id,
            doc_name=doc.name,
            leftover=False,
            needs_parse=False,
        ),
    )


def test_hand_edited_size_with_the_right_sha_is_proven_too():
    doc = managed("a.txt")
    doc.meta_fields["size"] = 11
    assert kinds(plan_sync([entry("a.txt")], [doc])) == ["adopt"]


def test_label_without_label_check_is_trusted_and_relabelled_once():
    doc = managed("a.txt")
    del doc.meta_fields["label_check"]
    plan = plan_sync([entry("a.txt")], [doc])
    assert plan.actions == (Relabel(entry=entry("a.txt"), doc_id=doc.id),)


def test_duplicates_keep_the_oldest_and_delete_the_rest_once_it_parsed():
    older = managed("a.txt", run="RUNNING", create_time=1)
    newer = managed("a.txt", run="DONE", create_time=2)
    plan = plan_sync([entry("a.txt")], [newer, older])
    assert Unchanged(path="a.txt", doc_id=older.id, pending=True) in plan.actions
    assert (
        Delete(path="a.txt", doc_ids=(newer.id,), reason="duplicate", wait_for=older.id)
        in plan.actions
    )


@pytest.mark.parametrize("seed", range(20))
def test_every_observer_keeps_the_same_duplicate(seed):
    """Which copy wins must not depend on who looks, nor when (states change, order changes)."""
    rng = random.Random(seed)
    docs = [managed("a.txt", create_time=rng.randrange(3)) for _ in range(4)]
    keepers = set()
    for _ in range(10):
        for d in docs:
            d.run = rng.choice(["DONE", "RUNNING", "UNSTART", "FAIL"])
            d.chunk_count = rng.randrange(3)
        rng.shuffle(docs)
        plan = plan_sync([entry("a.txt")], docs)
        [primary] = [a for a in plan.actions if not isinstance(a, Delete)]
        keepers.add(primary.doc_id)
    assert len(keepers) == 1


def test_move_across_extensions_is_a_replace_of_the_old_document():
    doc = managed("notes.md", sha="s1")
    plan = plan_sync([entry("notes.txt", sha="s1")], [doc])
    assert plan.actions == (
        Replace(
            entry=entry("notes.txt", sha="s1"),
            old_ids=(doc.id,),
            detail="moved from notes.md, extension changed",
        ),
    )


def test_move_prefers_a_document_with_the_same_extension():
    md = managed("old.md", sha="s1", create_time=1)
    txt = managed("old.txt", sha="s1", create_time=2)
    plan = plan_sync([entry("new.txt", sha="s1")], [md, txt], PlanOptions(allow_mass_delete=True))
    [move] = plan.of_kind("move")
    assert move.doc_id == txt.id


def test_superseded_version_is_deleted_once_the_new_one_parsed():
    old = managed("a.txt", sha="old")
    new = managed("a.txt", sha="new", run="DONE")
    plan = plan_sync([entry("a.txt", sha="new")], [old, new])
    assert Delete(path="a.txt", doc_ids=(old.id,), reason="superseded") in plan.actions


def test_superseded_version_waits_for_the_new_one_to_parse():
    old = managed("a.txt", sha="old")
    new = managed("a.txt", sha="new", run="UNSTART")
    plan = plan_sync([entry("a.txt", sha="new")], [old, new])
    assert Reparse(path="a.txt", doc_id=new.id, reason="never parsed") in plan.actions
    assert (
        Delete(path="a.txt", doc_ids=(old.id,), reason="superseded", wait_for=new.id)
        in plan.actions
    )


@pytest.mark.parametrize(("run", "reason"), [("FAIL", "failed"), ("CANCEL", "cancelled")])
def test_failed_or_cancelled_parse_is_reparsed(run, reason):
    doc = managed("a.txt", run=run)
    plan = plan_sync([entry("a.txt")], [doc])
    assert plan.actions == (Reparse(path="a.txt", doc_id=doc.id, reason=reason),)


def test_reparse_of_failures_can_be_switched_off_but_never_parsed_still_parses():
    failed, never = managed("a.txt", run="FAIL"), managed("b.txt", run="UNSTART")
    opts = PlanOptions(reparse_failed=False)
    plan = plan_sync([entry("a.txt"), entry("b.txt")], [failed, never], opts)
    assert kinds(plan) == ["reparse", "unchanged"]
    assert plan.of_kind("reparse")[0].doc_id == never.id


def test_queued_document_is_pending_not_reparsed():
    doc = managed("a.txt", run="UNSTART")
    doc.progress_msg = "09:00:01 Task has been received."
    plan = plan_sync([entry("a.txt")], [doc])
    assert plan.actions == (Unchanged(path="a.txt", doc_id=doc.id, pending=True),)


def test_running_document_is_unchanged_but_pending():
    doc = managed("a.txt", run="RUNNING")
    plan = plan_sync([entry("a.txt")], [doc])
    assert plan.actions == (Unchanged(path="a.txt", doc_id=doc.id, pending=True),)
    assert not plan.is_noop


def test_scope_limits_the_paths_acted_on():
    docs = [managed("a.txt", sha="old"), managed("gone.txt", sha="g"), managed("c.txt")]
    entries = [entry("a.txt", sha="new"), entry("b.txt", sha="b"), entry("c.txt")]
    plan = plan_sync(entries, docs, PlanOptions(in_scope=lambda p: p == "b.txt"))
    assert kinds(plan) == ["upload"]


def test_move_takes_its_document_from_outside_the_scope():
    doc = managed("old.txt", sha="x")
    plan = plan_sync(
        [entry("new.txt", sha="x")], [doc], PlanOptions(in_scope=lambda p: p == "new.txt")
    )
    assert kinds(plan) == ["move"]
    # ...and the old path's own partition later finds nothing to delete
    later = plan_sync(
        [entry("new.txt", sha="x")], [doc], PlanOptions(in_scope={"old.txt"}.__contains__)
    )
    assert later.actions == ()


def test_s3_without_sha_uses_the_change_token():
    doc = managed("a.txt", token="etag1")
    assert kinds(plan_sync([entry("a.txt", sha=None, token="etag1")], [doc])) == ["unchanged"]
    assert kinds(plan_sync([entry("a.txt", sha=None, token="etag2")], [doc])) == ["replace"]


def test_s3_move_is_recognised_by_etag_when_tokens_are_content_hashes():
    doc = managed("old.txt", token="etag1")
    e = entry("new.txt", sha=None, token="etag1")
    assert kinds(plan_sync([e], [doc], PlanOptions(change_token_is_content_hash=True))) == ["move"]
    without = plan_sync([e], [doc], PlanOptions(allow_mass_delete=True))
    assert kinds(without) == ["delete", "upload"]


def test_counts_and_noop():
    docs = [managed("a.txt"), managed("b.txt", sha="old"), managed("gone.txt", sha="g")]
    entries = [entry("a.txt"), entry("b.txt", sha="new"), entry("c.txt", sha="c")]
    plan = plan_sync(entries, docs, PlanOptions(allow_mass_delete=True))
    assert plan.counts() == {"unchanged": 1, "replace": 1, "upload": 1, "delete": 1}
    assert not plan.is_noop
    assert plan.managed_documents == 3


@pytest.mark.parametrize("seed", range(40))
def test_invariants_on_random_scenarios(seed):
    rng = random.Random(seed)
    paths = [f"d{rng.randrange(3)}/f{i}.txt" for i in range(rng.randrange(1, 30))]
    shas = [f"s{rng.randrange(6)}" for _ in paths]
    entries = [entry(p, sha=s) for p, s in zip(paths, shas, strict=True) if rng.random() < 0.8]
    docs: list[Doc] = []
    for p, s in zip(paths, shas, strict=True):
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            sha = s if rng.random() < 0.7 else f"s{rng.randrange(6)}"
            docs.append(
                managed(p, sha=sha, run=rng.choice(["DONE", "DONE", "FAIL", "UNSTART", "RUNNING"]))
            )
        if rng.random() < 0.15:
            docs.append(leftover(p))
        if rng.random() < 0.1:
            docs.append(Doc(name=p, size=10, run="UNSTART", chunk_count=0))  # a user's, unparsed
        if rng.random() < 0.1:
            docs.append(Doc(name=p, size=10, run="DONE"))  # a user's own document
    opts = PlanOptions(allow_mass_delete=rng.random() < 0.5)
    plan = plan_sync(entries, docs, opts)

    by_id = {d.id: d for d in docs}
    per_path: dict[str, list[str]] = {}
    for a in plan.actions:
        if not isinstance(a, Delete):
            per_path.setdefault(a.path, []).append(a.kind)
    # every file has exactly one primary action
    assert sorted(per_path) == sorted(e.path for e in entries)
    assert all(len(v) == 1 for v in per_path.values())
    deleted = [i for a in plan.of_kind("delete") for i in a.doc_ids]
    assert len(deleted) == len(set(deleted)), "a document is deleted twice"
    kept = {getattr(a, "doc_id", None) for a in plan.actions if not isinstance(a, Delete)}
    assert not kept & set(deleted), "a kept document is deleted"
    for doc_id in deleted:
        doc = by_id[doc_id]
        if not doc.meta_fields:
            assert ".rfd-pending" in doc.name, "a user's document was deleted"
    # nothing removed beyond the guard
    removed = sum(len(d.doc_ids) for d in plan.of_kind("delete") if d.reason == "removed")
    managed_total = sum(1 for d in docs if d.meta_fields)
    assert opts.allow_mass_delete or removed <= 0.5 * managed_total
    # moves take distinct documents
    moved = [a.doc_id for a in plan.of_kind("move")]
    assert len(moved) == len(set(moved))
