"""The ``ssl`` command line: one subcommand per registered task, plus ``ssl env``.

Subcommands are generated from the task registry, and every flag's help text is
the description of the recipe key it sets, so flags, recipes and docs cannot
drift apart. Importing this module must not import torch or transformers: that
keeps ``ssl --help`` instant (a test asserts it).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ssl_cli import __version__
from ssl_cli.errors import UserError
from ssl_cli.flags import (
    COMMON_ALIASES,
    COMMON_FLAGS,
    RUN,
    CommandOptions,
    Flag,
    FlagError,
    Rewritten,
    rewrite_args,
    unknown_option,
)
from ssl_cli.tasks import Command, all_tasks, task_commands

if TYPE_CHECKING:  # pragma: no cover
    from ssl_cli.tasks.base import Task


class _TaskCommands(TyperGroup):
    """The ``ssl`` group, whose task commands are built when one is run, not at start-up.

    A task command has a typed option per recipe key, and building them all
    took longer than the rest of ``ssl --help`` together. The group's help
    lists each task by name and help text, from a stand-in without options;
    resolving the command to run (or to complete in a shell) swaps in the
    real one.
    """

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in task_commands() and not getattr(command, "has_task_options", False):
            command = self.commands[name] = task_command(all_tasks()[name])
        return name, command, rest


app = typer.Typer(
    name="ssl",
    help="Fine-tune and pretrain self-supervised language models (Hugging Face + Accelerate).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_TaskCommands,
)


def _field(recipe_cls: type, dotted: str) -> Any:
    cls: Any = recipe_cls
    field = None
    for part in dotted.split("."):
        field = cls.model_fields[part]
        cls = field.annotation
    return field


def _choices(annotation: Any) -> tuple[str, ...]:
    """The string choices of a Literal annotation (possibly optional), else ()."""
    import typing

    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(annotation) if isinstance(v, str))
    if int in typing.get_args(annotation):  # a number or a word (batch size: N or auto), not a choice
        return ()
    return next((c for a in typing.get_args(annotation) if (c := _choices(a))), ())


def _number_or_word(annotation: Any) -> str | None:
    """The metavar of a number-or-word key (``N|auto``), else None."""
    import typing

    arguments = typing.get_args(annotation)
    if int not in arguments:
        return None
    words = [str(w) for a in arguments if typing.get_origin(a) is typing.Literal for w in typing.get_args(a)]
    return "|".join(["N", *words]) if words else None


def first_sentence(text: str) -> str:
    """The help line of a key: its description's first sentence (the docs' recipe reference has all of it)."""
    match = re.search(r"(?<=[a-z0-9)\]'])\.\s+(?=[A-Z])", text)
    return text[: match.start() + 1] if match else text


def flag_help(flag: Flag, task: Task) -> str:
    """What ``--help`` says of a flag on ``task``'s command: the task's own wording where it has one."""
    if flag.path in task.flag_help:
        return task.flag_help[flag.path]
    if flag.path == "data.name" and task.datasets:
        names = ", ".join(sorted(source.name for source in task.datasets))
        return f"A registered dataset ({names}), a local file or a directory."
    if flag.value is not None:
        return f"Same as --{flag.path.rsplit('.', 1)[1].replace('_', '-')} {flag.value}."
    field = _field(task.recipe_cls, flag.path)
    text = flag.help or first_sentence(field.description or "")
    choices = _choices(field.annotation)
    return f"{text} One of: {', '.join(choices)}." if choices else text


_METAVARS = {int: "N", float: "X"}


def _number_or_word_parser(words: list[str], least: int = 1, most: int | None = None) -> Any:
    """A flag's value that is a whole number from ``least`` (to ``most``) or one of ``words``, checked where Click
    names the option as the user typed it."""
    span = f"from {least} to {most}" if most is not None else f"of at least {least}"

    def parse(value: str) -> str:
        text = str(value).strip()
        if text.lower() in words or (text.isdigit() and int(text) >= least and (most is None or int(text) <= most)):
            return text.lower()
        raise typer.BadParameter(f"{value!r} is neither a whole number {span} nor {' or '.join(words)}")

    return parse


def _flag_parameters(flag: Flag, task: Task) -> list[inspect.Parameter]:
    """One keyword parameter (two for a boolean: ``--x`` and a hidden ``--no-x``) for a flag."""
    panel = flag.panel or f"{task.name} options"
    name = flag.name.replace("-", "_")
    help_text = flag_help(flag, task)
    if flag.type is bool:
        on = typer.Option(f"--{flag.name}", is_flag=True, help=help_text, rich_help_panel=panel, metavar="")
        off = typer.Option(f"--no-{flag.name}", is_flag=True, hidden=True)
        return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, on]),
                inspect.Parameter(f"no_{name}", inspect.Parameter.KEYWORD_ONLY, default=False,
                                  annotation=Annotated[bool, off])]
    field = _field(task.recipe_cls, flag.path)
    annotation = field.annotation
    number_or_word = _number_or_word(annotation)
    metavar = number_or_word or ("NAME" if _choices(annotation) else _METAVARS.get(flag.type, "TEXT"))
    bounds = field.json_schema_extra or {}
    parser = ({"parser": _number_or_word_parser(number_or_word.split("|")[1:], bounds.get("at_least", 1),
                                                bounds.get("at_most"))} if number_or_word else {})
    option = typer.Option(f"--{flag.name}", help=help_text, show_default=False, rich_help_panel=panel, metavar=metavar,
                          **parser)
    annotation = Annotated[Optional[flag.type], option]  # noqa: UP045 - typer needs Optional
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)]


_META_PARAMETERS = (
    inspect.Parameter(
        "recipe",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Optional[str], typer.Option("--recipe", help="YAML recipe file.", metavar="PATH",  # noqa: UP045
                                                         rich_help_panel=RUN)],
    ),
    inspect.Parameter(
        "set_",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Optional[list[str]],  # noqa: UP045
            typer.Option("--set", help="Any recipe key: --set training.weight_decay=0.1 (repeatable).",
                         metavar="KEY=VALUE", rich_help_panel=RUN),
        ],
    ),
    inspect.Parameter(
        "dry_run",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--dry-run", help="Print the resolved recipe and exit.", metavar="",
                                                rich_help_panel=RUN)],
    ),
    inspect.Parameter(
        "debug",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.", metavar="",
                                                rich_help_panel=RUN)],
    ),
)


def task_flags(task: Task) -> tuple[Flag, ...]:
    return (*COMMON_FLAGS, *task.flags)


def command_options(task: Task) -> CommandOptions:
    """What ``ssl <task>`` accepts, with Hugging Face's spellings of it."""
    return CommandOptions.of(task_flags(task), {**COMMON_ALIASES, **task.flag_aliases})


def flag_overrides(task: Task, values: dict[str, Any]) -> dict[str, Any]:
    """Map parsed flag values to dotted recipe keys (unset flags are left out; ``--no-x`` sets x false)."""
    overrides: dict[str, Any] = {}
    for flag in task_flags(task):
        key = flag.name.replace("-", "_")
        value = values.get(key)
        if flag.type is bool:
            value = False if values.get(f"no_{key}") else (True if value else None)
        if flag.recipe_value(value) is not None:
            overrides[flag.path] = flag.recipe_value(value)
    return overrides


_EPILOG = ("Every flag sets the recipe key of its name (docs/recipe-reference.md). Hugging Face's spellings work "
           "too: --do_train or --do-train, --do_predict false, --model_name_or_path, --overwrite_output_dir.")


def _make_command(task: Task):
    def command(**values: Any) -> None:
        debug = values.pop("debug")
        with _user_errors(debug):
            from ssl_cli.recipe_files import resolve_recipe

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

    parameters = [p for flag in task_flags(task) for p in _flag_parameters(flag, task)]
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
    from ssl_cli.recipe_files import recipe_to_yaml

    text = recipe_to_yaml(recipe)
    if not sys.stdout.isatty():
        sys.stdout.write(text)
        return
    from rich.console import Console
    from rich.syntax import Syntax

    Console().print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))


def task_command(task: Task) -> Any:
    """The Click command of ``ssl <task>``, with all its options."""
    one = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    one.command(name=task.name, help=task.help, epilog=_EPILOG)(_make_command(task))
    command = typer.main.get_command(one)
    command.name = task.name
    command.has_task_options = True  # type: ignore[attr-defined]
    return command


def _stand_in(declared: Command) -> Any:
    def command() -> None:
        raise RuntimeError(f"the stand-in of ssl {declared.name} ran instead of its command")

    return command


for _declared in task_commands().values():
    app.command(name=_declared.name, help=_declared.help, epilog=_EPILOG)(_stand_in(_declared))


@app.command("env")
def env_command() -> None:
    """Print versions, devices and the Accelerate config found (paste it into bug reports)."""
    from ssl_cli.envinfo import print_env

    print_env()


_Text = Optional[str]  # noqa: UP045 - typer needs Optional


@app.command("evaluate")
def evaluate_command(
    model: Annotated[str, typer.Option("--model", metavar="PATH", help="The model directory to score (an "
                                       "ssl output dir, or any save_pretrained directory with --task).")],
    data: Annotated[_Text, typer.Option("--data", metavar="NAME", help="Dataset to score on: a registered name, "
                                        "a Hub id, a file or a directory. Default: the model's own validation data.")] = None,
    task: Annotated[_Text, typer.Option("--task", metavar="NAME", help="The command the model was trained with, where the model "
                                        "directory has no recipe.yaml (default: from its head).")] = None,
    validation_file: Annotated[_Text, typer.Option("--validation-file", metavar="PATH", help="Evaluation data file.")] = None,
    test_file: Annotated[_Text, typer.Option("--test-file", metavar="PATH", help="Test file: its predictions are written.")] = None,
    eval_data: Annotated[_Text, typer.Option("--eval-data", metavar="NAMES", help="More sets to score, comma separated.")] = None,
    dataset_config_name: Annotated[_Text, typer.Option("--dataset-config-name", metavar="NAME", help="Hub dataset configuration.")] = None,
    dataset_info: Annotated[_Text, typer.Option("--dataset-info", metavar="PATH", help="Your dataset registry (YAML/JSON).")] = None,
    max_eval_samples: Annotated[Optional[int], typer.Option("--max-eval-samples", metavar="N", help="Score the first N examples.")] = None,  # noqa: UP045
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", metavar="N",  # noqa: UP045
                                                      help="Batch size per process (HF: per_device_eval_batch_size).")] = None,
    output_dir: Annotated[_Text, typer.Option("--output-dir", metavar="PATH", help="Where metrics and predictions go (default: "
                                              "MODEL/eval-<data>/).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Replace an existing evaluation dir.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Any recipe key: KEY=VALUE (repeatable).")] = None,  # noqa: UP045
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for errors.")] = False,
) -> None:
    """Score a fine-tuned model on any evaluation set: metrics and predictions into a new dir; the model is never
    copied or changed. Runs on several processes under accelerate launch."""
    with _user_errors(debug):
        from ssl_cli.api import evaluate
        from ssl_cli.recipe_files import parse_set_override

        sets = {".".join(path): value for path, value in map(parse_set_override, set_ or [])}
        if overwrite:
            sets["training.overwrite"] = True
        evaluate(model, data, task=task, output_dir=output_dir, set=sets, validation_file=validation_file,
                 test_file=test_file, eval_data=eval_data, dataset_config_name=dataset_config_name,
                 dataset_info=dataset_info, max_eval_samples=max_eval_samples,
                 per_device_eval_batch_size=batch_size)


@app.command("predict")
def predict_command(
    model: Annotated[str, typer.Option("--model", metavar="PATH", help="A fine-tuned model directory.")],
    input_: Annotated[Path, typer.Option("--input", metavar="PATH", help="JSON lines, one row each: {\"text\"[, \"text_pair\"]} "
                                         "(glue, nli), {\"text\"} or {\"tokens\"} (tag-pos), {\"question\", "
                                         "\"context\"} (qa); .txt: a text per line.")],
    output: Annotated[Optional[Path], typer.Option("--output", metavar="PATH", help="Where to write (JSON lines; tag-pos: .conllu "  # noqa: UP045
                                                   "for CoNLL-U). Default: stdout.")] = None,
    task: Annotated[_Text, typer.Option("--task", metavar="NAME", help="The model's command, where its directory has no "
                                        "recipe.yaml (default: from its head).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", min=1, help="Rows per forward pass.")] = 32,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for errors.")] = False,
) -> None:
    """Predictions of a fine-tuned model for raw input, JSON lines in and out, in batches with progress."""
    with _user_errors(debug):
        import json

        from ssl_cli.api import trained_model
        from ssl_cli.prediction import read_rows, run_prediction

        model_dir, owner, saved = trained_model(model, task)
        rows = read_rows(input_)
        predicted, rate = run_prediction(model_dir, owner, rows, batch_size, output, saved)
        if output is None:
            sys.stdout.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in predicted))
        where = f" into {output}" if output else ""
        rows_word = "row" if len(predicted) == 1 else "rows"
        print(f"predicted {len(predicted)} {rows_word}{where} ({rate:.1f} rows/s)", file=sys.stderr)


@app.command("export")
def export_command(
    model: Annotated[str, typer.Option("--model", metavar="PATH", help="A LoRA output dir (adapter_config.json).")],
    merge: Annotated[bool, typer.Option("--merge", metavar="", help="Merge the adapter into its base model.")] = False,
    output_dir: Annotated[_Text, typer.Option("--output-dir", metavar="PATH", help="Where the merged model goes "
                                              "(default: MODEL/merged).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Replace a non-empty output dir.")] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for errors.")] = False,
) -> None:
    """Merge a LoRA adapter into its base: a plain model that from_pretrained and pipeline(...) load without peft."""
    with _user_errors(debug):
        from ssl_cli.api import export

        print(f"merged model: {export(model, output_dir=output_dir, merge=merge, overwrite=overwrite)}")


@app.command("generate")
def generate_command(
    model: Annotated[str, typer.Option("--model", metavar="PATH", help="A causal-LM directory (an output of ssl pretrain-clm).")],
    prompt: Annotated[str, typer.Option("--prompt", metavar="TEXT", help="Text to continue (the query in few-shot mode).")],
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N", min=1, help="Tokens to generate.")] = 50,
    temperature: Annotated[float, typer.Option("--temperature", metavar="X", min=0.0, help="Sampling temperature; 0 = greedy.")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", metavar="N", min=0, help="Sample among the k most likely tokens (0: all).")] = 50,
    top_p: Annotated[float, typer.Option("--top-p", metavar="X", min=0.0, max=1.0, help="Nucleus sampling mass.")] = 1.0,
    num_return_sequences: Annotated[int, typer.Option("--num-return-sequences", metavar="N", min=1, help="Samples to draw.")] = 1,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed: the same seed gives the same samples.")] = 42,
    examples: Annotated[Optional[Path], typer.Option("--examples", metavar="PATH", help="Few-shot: JSON lines with input/output fields.")] = None,  # noqa: UP045
    shots: Annotated[int, typer.Option("--shots", metavar="N", min=0, help="Few-shot: how many examples go before the query.")] = 3,
    instruction: Annotated[str, typer.Option("--instruction", metavar="TEXT", help="Few-shot: a line before the examples.")] = "",
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", metavar="", help="Allow the model's own code.")] = False,
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for errors.")] = False,
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


#: Hugging Face's names of the options of ssl evaluate and ssl predict.
OTHER_ALIASES = {
    "evaluate": {"model-name-or-path": "model", "dataset-name": "data", "overwrite-output-dir": "overwrite",
                 "per-device-eval-batch-size": "batch-size"},
    "predict": {"model-name-or-path": "model", "per-device-eval-batch-size": "batch-size"},
}


def _aliased(arg: str, aliases: dict[str, str]) -> str:
    name, sep, value = arg.partition("=")
    canonical = aliases.get(name[2:]) if name.startswith("--") else None
    return f"--{canonical}{sep}{value}" if canonical else arg


def rewrite_command_line(args: list[str]) -> Rewritten:
    """The arguments in the spelling Click parses: a task command's with its HF spellings and boolean values
    rewritten (``ssl_cli.flags``), any other's with ``_`` read as ``-`` in option names."""
    command = args[0] if args and args[0] in task_commands() else None
    if command is None:
        rewritten = rewrite_args(args, None)
        aliases = OTHER_ALIASES.get(args[0] if args else "", {})
        rewritten.args = [_aliased(arg, aliases) for arg in rewritten.args]
        return rewritten
    rewritten = rewrite_args(args[1:], command_options(all_tasks()[command]))
    rewritten.args.insert(0, command)
    return rewritten


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv``: the arguments after ``ssl``). A usage error, such as an unknown option
    or a flag's value out of range, is one ``error:`` line with exit code 2, like every other bad input, instead of
    Click's boxed usage text; it names options as the user spelled them."""
    # Click's UsageError, whether typer vendors Click (0.2x) or uses the package: BadParameter derives from it
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    raw = sys.argv[1:] if argv is None else argv
    try:
        rewritten = rewrite_command_line(raw)
    except FlagError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    for line in rewritten.notes:
        print(f"note: {line}", file=sys.stderr)
    try:
        code = app(args=rewritten.args, prog_name="ssl", standalone_mode=False)
    except usage_error as err:
        if not raw or type(err).__name__ == "NoArgsIsHelpError":
            err.show()  # plain `ssl`: the help, as before
            raise SystemExit(err.exit_code) from None
        print(f"error: {_usage_message(err, rewritten)}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)


def _usage_message(err: Any, rewritten: Rewritten) -> str:
    """Click's message, with every option in the user's spelling, or ours for an unknown option."""
    command = rewritten.args[0] if rewritten.args and rewritten.args[0] in task_commands() else None
    option = getattr(err, "option_name", None)
    if type(err).__name__ == "NoSuchOption" and option:
        typed = rewritten.typed.get(option.lstrip("-"), option)
        if command is not None:
            return unknown_option(typed, command_options(all_tasks()[command]), command)
        if err.ctx is not None:  # ssl evaluate, predict, generate: their own options
            names = [o.lstrip("-") for p in err.ctx.command.params for o in (*p.opts, *p.secondary_opts)]
            return unknown_option(typed, CommandOptions(valued=set(names)), err.ctx.command_path.removeprefix("ssl "))
    message = err.format_message().rstrip(".")
    for canonical, typed in rewritten.typed.items():
        message = message.replace(f"'--{canonical}'", f"'{typed}'")
    where = f"; see '{err.ctx.command_path} --help'" if err.ctx is not None else ""
    return message + where
