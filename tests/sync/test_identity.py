from ragflow_dagster.sync.identity import (
    MANAGED_BY,
    NAME_LIMIT_BYTES,
    document_name,
    label_check,
    managed_meta,
    managed_path,
    matches_document_name,
    partition_key,
    shard_key,
    shard_keys,
    shard_of,
)


def test_meta_contract_keys():
    meta = managed_meta(
        source_uri="s3://b/p/a.txt", path="a.txt", sha256="ab", size=3, change_token="e"
    )
    assert meta == {
        "managed_by": MANAGED_BY,
        "source_uri": "s3://b/p/a.txt",
        "source_path": "a.txt",
        "sha256": "ab",
        "size": 3,
        "change_token": "e",
        "label_check": label_check(path="a.txt", sha256="ab", size=3, change_token="e"),
    }
    assert managed_path(meta) == "a.txt"
    assert managed_path({"source_path": "a.txt"}) is None
    assert managed_path({"managed_by": "someone-else", "source_path": "a.txt"}) is None
    assert managed_path(None) is None


def test_document_name_keeps_the_path_when_it_fits():
    assert document_name("a/b/c.pdf") == "a/b/c.pdf"


def test_long_names_are_shortened_to_the_server_limit_keeping_the_extension():
    path = "dir/" + "é" * 200 + ".markdown.md"
    name = document_name(path)
    assert len(name.encode("utf-8")) <= NAME_LIMIT_BYTES
    assert name.endswith(".md") and name.startswith("dir/")
    assert name != document_name(path.replace("dir/", "dir2/"))
    assert matches_document_name(name, path)


def test_server_renamed_names_match():
    assert matches_document_name("a(1).txt", "a.txt")
    assert matches_document_name("x/a (12).txt", "x/a.txt")
    assert not matches_document_name("a(1).pdf", "a.txt")
    assert not matches_document_name("ab(1).txt", "a.txt")


def test_partition_keys_are_safe_and_stable():
    assert partition_key("docs/a.txt") == "docs/a.txt"
    for bad in ["a...b.txt", "x" * 65, "a,b.txt", "a|b", "[x]", " lead.txt", "h-looks-hashed"]:
        key = partition_key(bad)
        assert key.startswith("h-") and len(key) <= 64 and "..." not in key
        assert key == partition_key(bad)
    assert partition_key("x" * 65) != partition_key("y" * 65)


def test_shards_cover_and_spread():
    keys = shard_keys(16)
    assert keys[0] == "shard-00" and keys[-1] == "shard-15" and keys == sorted(keys)
    counts = [0] * 16
    for i in range(1600):
        counts[shard_of(f"f{i}.txt", 16)] += 1
    assert min(counts) > 50
    assert shard_key(3, 16) == "shard-03"
