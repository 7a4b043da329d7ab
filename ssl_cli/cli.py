"""The ``ssl`` command line: one subcommand per registered task, plus ``ssl env``.

Subcommands are generated from the task registry, and every flag's help text is
the description of the recipe key it sets, so flags, recipes and docs cannot
drift apart. Importing this module must not import torch or transformers: that
keeps ``ssl --help`` instant (a test asserts it).
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ssl_cli import __version__
from ssl_cli.errors import UserError
from ssl_cli.tasks import all_tasks
from ssl_cli.tasks.base import Flag, Task

#: Flags every subcommand shares, named as in Hugging Face's example scripts.
COMMON_FLAGS: tuple[Flag, ...] = (
    Flag("model", "model.name_or_path", aliases=("--model-name-or-path",)),
    Flag("init", "model.init"),
    Flag("config-overrides", "model.config_overrides"),
    Flag("ignore-mismatched-sizes", "model.ignore_mismatched_sizes", bool),
    Flag("data", "data.name"),
    Flag("train-file", "data.train_file"),
    Flag("validation-file", "data.validation_file"),
    Flag("test-file", "data.test_file"),
    Flag("eval-data", "data.eval_data"),
    Flag("max-seq-length", "data.max_seq_length", int),
    Flag("max-train-samples", "data.max_train_samples", int),
    Flag("max-eval-samples", "data.max_eval_samples", int),
    Flag("output-dir", "training.output_dir"),
    Flag("per-device-train-batch-size", "training.per_device_train_batch_size", int),
    Flag("per-device-eval-batch-size", "training.per_device_eval_batch_size", int),
    Flag("learning-rate", "training.learning_rate", float),
    Flag("num-train-epochs", "training.num_train_epochs", float),
    Flag("max-steps", "training.max_steps", int),
    Flag("gradient-accumulation-steps", "training.gradient_accumulation_steps", int),
    Flag("warmup-ratio", "training.warmup_ratio", float),
    Flag("seed", "training.seed", int),
    Flag("mixed-precision", "training.mixed_precision"),
    Flag("torch-compile", "training.torch_compile", bool),
    Flag("eval-steps", "training.eval_steps", int),
    Flag("save-steps", "training.save_steps", int),
    Flag("logging-steps", "training.logging_steps", int),
    Flag("save-total-limit", "training.save_total_limit", int),
    Flag("do-predict", "training.do_predict", bool),
    Flag("overwrite", "training.overwrite", bool),
    Flag("resume", "training.resume", bool),
)

app = typer.Typer(
    name="ssl",
    help="Fine-tune and pretrain self-supervised language models (Hugging Face + Accelerate).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _field_description(recipe_cls: type, dotted: str) -> str:
    """The schema description of a dotted recipe key (the single source of help text)."""
    cls: Any = recipe_cls
    field = None
    for part in dotted.split("."):
        field = cls.model_fields[part]
        cls = field.annotation
    return (field.description or "") + f"  [recipe: {dotted}]"


def _flag_parameter(flag: Flag, recipe_cls: type) -> inspect.Parameter:
    help_text = _field_description(recipe_cls, flag.path)
    decls = (f"--{flag.name}", *flag.aliases)
    if flag.type is bool:
        option = typer.Option(*decls, help=help_text)
        annotation: Any = Annotated[bool, option]
        default: Any = False
    else:
        option = typer.Option(*decls, help=help_text, show_default=False)
        annotation = Annotated[Optional[flag.type], option]  # noqa: UP045 - typer needs Optional
        default = None
    return inspect.Parameter(flag.name.replace("-", "_"), inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_META_PARAMETERS = (
    inspect.Parameter(
        "recipe",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Optional[str], typer.Option("--recipe", help="YAML recipe file.")],  # noqa: UP045
    ),
    inspect.Parameter(
        "set_",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Optional[list[str]],  # noqa: UP045
            typer.Option("--set", help="Override any recipe key: --set training.learning_rate=3e-5 (repeatable)."),
        ],
    ),
    inspect.Parameter(
        "dry_run",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--dry-run", help="Print the resolved recipe and exit.")],
    ),
    inspect.Parameter(
        "debug",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")],
    ),
)


def flag_overrides(task: Task, values: dict[str, Any]) -> dict[str, Any]:
    """Map parsed flag values to dotted recipe keys (unset flags are left out)."""
    overrides: dict[str, Any] = {}
    for flag in (*COMMON_FLAGS, *task.flags):
        value = values.get(flag.name.replace("-", "_"))
        if value is None or value is False:
            continue
        if flag.path == "data.eval_data":
            value = [item.strip() for item in str(value).split(",") if item.strip()]
        overrides[flag.path] = value
    return overrides


def _make_command(task: Task):
    def command(**values: Any) -> None:
        debug = values.pop("debug")
        with _user_errors(debug):
            from ssl_cli.config import resolve_recipe

            recipe = resolve_recipe(
                task.recipe_cls,
                task.default_recipe(),
                values.pop("recipe"),
                values.pop("set_") or [],
                flag_overrides(task, values),
            )
            if values.pop("dry_run"):
                _print_recipe(recipe)
                return
            from ssl_cli.run import run_task

            run_task(task, recipe)

    parameters = [_flag_parameter(flag, task.recipe_cls) for flag in (*COMMON_FLAGS, *task.flags)]
    parameters += list(_META_PARAMETERS)
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = task.help
    command.__name__ = task.name.replace("-", "_")
    return command


class _user_errors:
    """Turn UserError (and a few well-known library errors) into one line + exit 2."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug

    def __enter__(self) -> None:
        if self.debug:
            os.environ["SSL_DEBUG"] = "1"

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or self.debug or not isinstance(exc, UserError):
            return False
        from rich.console import Console

        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {exc}", markup=True)
        raise SystemExit(exc.exit_code)


def _print_recipe(recipe: Any) -> None:
    """Highlighted on a terminal; piped or redirected, the plain YAML with every line whole (paths stay copyable)."""
    from ssl_cli.config import recipe_to_yaml

    text = recipe_to_yaml(recipe)
    if not sys.stdout.isatty():
        sys.stdout.write(text)
        return
    from rich.console import Console
    from rich.syntax import Syntax

    Console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


for _task in all_tasks().values():
    app.command(name=_task.name, help=_task.help)(_make_command(_task))


@app.command("env")
def env_command() -> None:
    """Print versions, devices and the Accelerate config found (paste it into bug reports)."""
    from ssl_cli.envinfo import print_env

    print_env()


@app.command("generate")
def generate_command(
    model: Annotated[str, typer.Option("--model", help="A causal-LM directory (an output of ssl pretrain-clm).")],
    prompt: Annotated[str, typer.Option("--prompt", help="Text to continue (the query in few-shot mode).")],
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Tokens to generate.")] = 50,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="Sample among the k most likely tokens (0: all).")] = 50,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass.")] = 1.0,
    num_return_sequences: Annotated[int, typer.Option("--num-return-sequences", min=1, help="Samples to draw.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same samples.")] = 42,
    examples: Annotated[Optional[Path], typer.Option("--examples", help="Few-shot: JSON lines with input/output fields.")] = None,  # noqa: UP045
    shots: Annotated[int, typer.Option("--shots", min=0, help="Few-shot: how many examples go before the query.")] = 3,
    instruction: Annotated[str, typer.Option("--instruction", help="Few-shot: a line before the examples.")] = "",
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow the model's own code.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    """Sample continuations from a causal LM; --examples builds a few-shot prompt (in-context learning)."""
    with _user_errors(debug):
        from ssl_cli.tasks.pretraining.generate import Sampling, few_shot_prompt, generate

        text = few_shot_prompt(examples, shots, prompt, instruction) if examples else prompt
        sampling = Sampling(max_new_tokens, temperature, top_k, top_p, num_return_sequences, seed)
        for i, continuation in enumerate(generate(model, text, sampling, trust_remote_code)):
            if num_return_sequences > 1:
                typer.echo(f"--- sample {i + 1}")
            typer.echo(continuation if examples else text + continuation)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ssl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Fine-tune and pretrain self-supervised language models (Hugging Face + Accelerate)."""


def normalise_argv(argv: list[str]) -> list[str]:
    """Accept Hugging Face's underscore spelling: ``--max_seq_length`` == ``--max-seq-length``.

    Only option names are rewritten, never values (``--set a.b_c=1`` keeps its value).
    """
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, sep, value = arg.partition("=")
            arg = name.replace("_", "-") + sep + value
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv``: the arguments after ``ssl``). A usage error, such as an unknown option
    or a flag's value out of range, is one ``error:`` line with exit code 2, like every other bad input, instead of
    Click's boxed usage text."""
    # Click's UsageError, whether typer vendors Click (0.2x) or uses the package: BadParameter derives from it
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    args = normalise_argv(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=args, prog_name="ssl", standalone_mode=False)
    except usage_error as err:
        if not args or type(err).__name__ == "NoArgsIsHelpError":
            err.show()  # plain `ssl`: the help, as before
            raise SystemExit(err.exit_code) from None
        where = f"; see '{err.ctx.command_path} --help'" if err.ctx is not None else ""
        print(f"error: {err.format_message().rstrip('.')}{where}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
