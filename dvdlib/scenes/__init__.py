"""What the procedural worlds share, importing none of them: the sprites toy worlds 1
(`dvdlib.toy`) and 2 (`dvdlib.toy2`) draw (`sprites`), their concept look-ups (`concepts`), and
the causal test's stand-in images of a new figure (`standins`, paper §3.3), which the smoke world
uses too."""
