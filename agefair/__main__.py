"""``agefair COMMAND ...`` (the console script) and ``python -m agefair COMMAND ...``: the same as
``python -m agefair.COMMAND ...``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": "the whole job: EDA, train the default variants, audit",
    "eda": "data-quality report and exploratory charts",
    "train": "train an age model in one of the variants",
    "tune": "learning-rate sweep and lr x weight-decay grid",
    "audit": "accuracy and fairness audit of trained variants or any model's predictions",
    "robustness": "accuracy and fairness under corrupted images",
    "predict": "ages for photos and face crops",
    "video": "ages of the faces in a video, in real time",
    "explain": "Grad-CAM heatmap of one image",
    "export": "export a trained model to ONNX",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return "usage: agefair COMMAND [ARGS ...]   (agefair COMMAND --help for a command's arguments)\n\n" \
           "commands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"agefair: error: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    command = importlib.import_module(f"agefair.{name}")
    sys.argv = [f"agefair {name}", *rest]
    command.run_cli(command.main, rest)


if __name__ == "__main__":
    main()
