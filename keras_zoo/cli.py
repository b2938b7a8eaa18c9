"""`keras-zoo`: list and inspect the registered models, and train one.

    keras-zoo list [PATTERN]        name, params, FLOPs (multiply-adds), resolution, paper top-1
    keras-zoo info NAME             counted figures beside the paper's, config and citation
    keras-zoo train [--model NAME] [--dataset digits] [--epochs N] [key=value ...]
"""
import argparse
import json
import os
import sys

from keras_zoo.training.config import FitConfig

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported


def _human(n, unit=""):
    if n is None:
        return "-"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n}{unit}"


def _figure(value):
    if isinstance(value, str) or value is None:
        return value or "-"
    return f"{value:,}" if isinstance(value, int) else _human(value)


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(pairs):
    """['width=1.4', 'name=foo'] -> {'width': 1.4, 'name': 'foo'} (values parsed as JSON when they can be)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: expected key=value, got {pair!r}")
        overrides[key] = _parse_value(value)
    return overrides


def cmd_list(args):
    import keras_zoo
    names = keras_zoo.list_models(args.pattern)
    if not names:
        print(f"No model matches {args.pattern!r}.")
        return 1
    rows = [("name", "params", "FLOPs", "res", "top-1")]
    for name in names:
        info = keras_zoo.model_info(name)
        top1 = info["paper"]["top1"]
        rows.append((name, _human(info["params"]), _human(info["macs"]), str(info["resolution"] or "-"),
                     f"{top1:.1f}" if top1 else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print("\nFLOPs are multiply-adds of one image at the default resolution, counted from the built graph.")
    return 0


def cmd_info(args):
    import keras_zoo
    info = keras_zoo.model_info(args.name)
    paper = info["paper"]
    print(f"{info['name']}  ({info['family']})")
    print(f"  trainable params  {info['params']:,}   (paper/reference: {_figure(paper['params'])}; "
          f"all weights {info['total_params']:,})")
    print(f"  FLOPs (mult-adds) {_human(info['macs'])} at {info['resolution']}px   (paper: {_figure(paper['macs'])})")
    print(f"  ImageNet top-1    {paper['top1'] if paper['top1'] else '-'} (paper)")
    if paper["note"]:
        print(f"  note              {paper['note']}")
    print(f"  citation          {info['citation']}")
    print("  config (overrides for create_model / key=value on the command line):")
    for key, value in info["config"].items():
        print(f"    {key} = {value!r}")
    return 0


def cmd_train(args):
    from keras_zoo.training.fit import train
    cfg = FitConfig(model=args.model, dataset=args.dataset, epochs=args.epochs, output_dir=args.output_dir,
                    resolution=args.resolution, batch_size=args.batch_size, learning_rate=args.learning_rate)
    report = train(cfg, parse_overrides(args.overrides), verbose=2 if args.quiet else 1)
    print(f"\n{report['model']} on {report['dataset']}: test top-1 = {report['test_top1']:.4f} "
          f"({report['test_examples']} held-out images, {report['epochs']} epochs, "
          f"{report['train_seconds']:.0f}s). Model saved to {report['saved_model']}.")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-zoo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'mobilenet*'")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("info", help="figures, config and citation of one model")
    p.add_argument("name")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("train", help="train a model (default: the main job on the bundled digits)")
    defaults = FitConfig()
    p.add_argument("--model", default=defaults.model)
    p.add_argument("--dataset", default=defaults.dataset, help="a bundled dataset: digits")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--resolution", type=int, default=defaults.resolution)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    p.add_argument("--output-dir", default=defaults.output_dir)
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="model config overrides")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, ImportError) as err:
        if os.environ.get("KERAS_ZOO_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
