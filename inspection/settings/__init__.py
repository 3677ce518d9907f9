"""Settings: what the station and each product are told to do, read from TOML merged over the
packaged defaults, every value checked and every refusal one sentence - the station config
(config.py), one recipe (recipe.py), the recipes folder a window or a PLC picks from
(recipe_folder.py), the reject gate's and trigger input's wiring (io.py), the PLC link (plc.py),
and the parsers and limits they share (parse.py).

May import only the shared vocabulary (inspection.errors), camera/, models/ and resources: the
bottom room, read by every other."""
