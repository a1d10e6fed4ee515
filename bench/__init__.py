"""`make bench`: the fleet against libvips and its own in-process speed."""
