"""One drawing at a time: matplotlib makes no promise of thread safety, and the bot draws charts and
PDFs in worker threads (one per chat event), so two coordinators asking at once take turns.

PDFs embed their fonts as TrueType (Type 42), so the text can be searched and copied; it is set
once here rather than per drawing, because matplotlib's settings are global to the process.
"""

import threading

import matplotlib

matplotlib.rcParams["pdf.fonttype"] = 42

DRAWING = threading.Lock()
