"""One recording from audio to written outputs, and the request gate every recording shares.

- `gate.py`: one per process (the job runner's): request slots, files' turns, the retry policy, stop
  and halt, each job's cancel, the jobs that sent a request, and every answer's bill in the ledger.
- `run.py`: the stages one set of job options makes (`Pipeline`); each recording runs through them in
  a `Recording` of its own (`recording.py`): chunks (`chunks.py`, checked and repaired in
  `repair.py`), stitching, stages after the transcript (`speakers.py`, `translation.py`), writing.
- `outputs.py`: where outputs go, asked by the runner before any work.
- `prepare.py`: how a recording is cut, and chunks made ahead of their requests.
"""

from .cache import ChunkCache
from .chunks import ChunkOptions
from .events import ChunkDone, ChunksCounted, Event, FileFinished, FileStarted, Notice
from .gate import Gate, GateOptions
from .outputs import OutputBook, OutputOptions, Outputs
from .prepare import CutOptions, ahead, chunk_params, files_preparing, upload_forecast_s
from .repair import AskOptions
from .run import Pipeline, StageOptions
from .translation import TranslateOptions

__all__ = [
    "AskOptions",
    "ChunkCache",
    "ChunkDone",
    "ChunkOptions",
    "ChunksCounted",
    "CutOptions",
    "Event",
    "FileFinished",
    "FileStarted",
    "Gate",
    "GateOptions",
    "Notice",
    "OutputBook",
    "OutputOptions",
    "Outputs",
    "Pipeline",
    "StageOptions",
    "TranslateOptions",
    "ahead",
    "chunk_params",
    "files_preparing",
    "upload_forecast_s",
]
