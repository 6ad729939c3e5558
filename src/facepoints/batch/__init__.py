"""`facepoints batch`: a whole dataset landmarked into one Parquet file, in this process or on a Ray cluster.

- `rows.py`: the batch -> rows function (`LandmarkBatch`, for Ray Data, Spark or Dask) and the rows' schema;
- `sources.py`: what a run reads (folders, globs, Parquet files of encoded images, URIs);
- `run.py`: the run itself: output checks, resumable part files, the final merge, the local engine;
- `ray_engine.py`: the Ray engine (a cluster's actors, each with one model).
"""

from .rows import COLUMNS, LandmarkBatch, RunError, rows_to_arrays, schema

__all__ = ["COLUMNS", "LandmarkBatch", "RunError", "rows_to_arrays", "schema"]
