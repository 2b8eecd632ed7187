"""Tests of ``toy://`` sources: first use builds the toy world.

Authors
 * audiollm-lobes developers, 2026
"""


def test_first_use_build_takes_the_world_lock_without_deadlock(
    tmp_path, monkeypatch
):
    """``toy://`` sources build the world on first use: the outer lock of
    ``ensure_toyworld`` must not be the lock ``build_world`` takes."""
    import threading

    from audiollm_lobes.toyworld import backbones, sources
    from audiollm_lobes.toyworld import world as world_mod

    monkeypatch.setenv("AUDIOLLM_LOBES_HOME", str(tmp_path))
    taken = []

    def fake_build_world(profile, seed=0, progress=True):
        root = world_mod.toyworld_dir(profile)
        with world_mod._build_lock(root):  # what a real (re)build takes
            taken.append(profile)
        return root

    monkeypatch.setattr(world_mod, "build_world", fake_build_world)
    monkeypatch.setattr(backbones, "build_backbones", lambda *a, **k: None)
    done = []
    worker = threading.Thread(
        target=lambda: done.append(sources.resolve_source("toy://tiny/lm")),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=20)
    assert taken == ["tiny"] and done, "ensure_toyworld deadlocked"
    assert done[0].endswith("tiny/backbones/lm")
