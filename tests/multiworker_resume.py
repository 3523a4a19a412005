"""One worker of a two-worker ``zoo train --strategy multiworker`` run into a run directory; with
``--kill-at EPOCH:BATCH`` the chief SIGKILLs itself in the middle of that epoch (a machine lost
mid-run), so the test can restart the run and compare it with an uninterrupted one.

    python tools/launch_workers.py -n 2 -- python tests/multiworker_resume.py OUT [--kill-at 1:5]
"""
from __future__ import annotations

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from zoo.training.fit import train  # noqa: E402

#: convnet-digits as shipped (dropout 0.25), smaller so that an epoch takes a second
OVERRIDES = dict(filters=[8], dense=[16])
EPOCHS, BATCH = 3, 64


class KillAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv):
    out = argv[0]
    chief = json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0
    callbacks = []
    if "--kill-at" in argv and chief:
        epoch, batch = map(int, argv[argv.index("--kill-at") + 1].split(":"))
        callbacks.append(KillAt(epoch, batch))
    result = train("convnet-digits", epochs=EPOCHS, batch_size=BATCH, overrides=OVERRIDES, out=out,
                   strategy="multiworker", callbacks=callbacks, verbose=0)
    # one write() of the whole line, so the workers' lines on the launcher's shared stdout cannot interleave
    sys.stdout.write(json.dumps({"initial_epoch": result.initial_epoch, "chief": chief}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
