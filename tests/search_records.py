"""The records a search left under a directory, as the search tests compare them."""

import math

from bpfree import records


def found(directory, nan_as_text=False):
    """{(trial id, execution): record} of every record under `directory`; with `nan_as_text`, a NaN in a
    history is written as the string "nan" (so that histories compare with ==)."""
    out = {}
    for path in records.iter_record_paths(str(directory)):
        data = records.read(path)
        if nan_as_text:
            data["history"] = {k: ["nan" if isinstance(v, float) and math.isnan(v) else v for v in values]
                               for k, values in data["history"].items()}
        out[(data["trial_id"], data["execution"])] = data
    return out
