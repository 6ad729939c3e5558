"""One thin module per verb: `add(sub)` declares its options, `run(args)` maps them to the library's options
and makes one library call. Each imports what it runs inside `run`, so `facepoints --help` and a mistyped
option answer at once instead of after torch, OpenCV and ONNX Runtime have loaded."""

from . import batch, detect, evaluate, export, prepare, train, web

VERBS = (detect, batch, prepare, train, evaluate, export, web)
