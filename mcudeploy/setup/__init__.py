"""``mcudeploy setup``: provisions what the tflm runtime and the FVP need, into a cache.

- :mod:`.cache`: the XDG cache, keyed installs built aside and renamed into place, manifests;
- :mod:`.download`: resumable, verified downloads with progress;
- :mod:`.sources`: pinned repositories from git mirrors, tarballs, ``setup pack`` archives or GitHub;
- :mod:`.tflm`: the TFLite Micro export recipe;
- :mod:`.fvp`: Arm's Corstone FVPs (pinned archives, EULA acceptance required).
"""
