"""The names `verify` gives the methods it compares, as they appear in metrics.json beside
"editor", "identity" and "mean_edit". Here so that the bundled editor, which produces these
outputs, and `verify`, which scores and reports them, share them without importing each other."""

SHUFFLED = "shuffled_instructions"  # the editor trained again with instructions shuffled across rows
FROM_NOISE = "editor_from_noise"  # the same editor sampling from pure noise instead of the source
