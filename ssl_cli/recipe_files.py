"""Recipes in files and on the command line: YAML read safely, ``--set`` overrides, the precedence chain
validated once into typed config (``ssl_cli.config``), and the resolved recipe written back.

This module must stay importable without torch or transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ssl_cli.config import Recipe, align_cadences
from ssl_cli.errors import UserError, did_you_mean, not_utf8

# --------------------------------------------------------------------------- loading


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe with ``yaml.safe_load``; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path} (pass an existing YAML file to --recipe)")
    try:
        data = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_unique_key_loader())  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise UserError(not_utf8(f"recipe {path}")) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"recipe {path}{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"recipe {path} must be a YAML mapping of sections (model:, data:, training:, ...)")
    return {key: value for key, value in data.items() if value is not None}  # `data:` with every key commented out


def _unique_key_loader() -> type:
    """yaml.SafeLoader, refusing a key given twice in one mapping (safe_load keeps the last one silently)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"the key '{key}' is given twice",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def parse_set_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value``; the value is parsed as YAML (so ``3e-5``, ``true``, ``[a, b]`` work)."""
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects KEY=VALUE such as training.learning_rate=3e-5, got '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``tree[a][b] = value`` creating intermediate mappings."""
    node = tree
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            raise UserError(f"recipe key '{'.'.join(path[: depth + 1])}' is {child!r}, not a section of keys: write "
                            f"it as a mapping, e.g. {part}: {{{path[depth + 1]}: ...}}")
        if child is None:
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` over ``base`` (new dict; lists are replaced, not appended)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _field_names(model_cls: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """Names of the fields that exist at ``path`` (for "did you mean")."""
    cls: Any = model_cls
    for part in path:
        field = cls.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        cls = field.annotation
    return list(cls.model_fields)


def _describe_error(recipe_cls: type[BaseModel], err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        hint = did_you_mean(str(loc[-1]), _field_names(recipe_cls, loc[:-1]))
        return f"unknown recipe key '{key}'{hint}; see docs/recipe-reference.md for the keys"
    if err["type"] == "missing":
        return f"recipe key '{key}' is required"
    value = err.get("input")
    if isinstance(value, dict) and err["type"] == "value_error":  # a section's own check, of several keys
        return f"recipe section '{key}': {err.get('ctx', {}).get('error', err['msg'])}"
    hint = ""
    if err["type"] == "literal_error" and isinstance(value, str):  # a misspelt choice
        import re

        hint = did_you_mean(value, re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", ""))))
    return f"recipe key '{key}' = {value!r}{hint}: {err['msg'].lower()}"


def validate_recipe(recipe_cls: type[Recipe], data: dict[str, Any]) -> Recipe:
    """Validate a merged recipe tree; the first problem becomes a one-line UserError."""
    try:
        return recipe_cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise UserError(_describe_error(recipe_cls, errors[0]) + more) from None


def resolve_recipe(
    recipe_cls: type[Recipe],
    defaults: dict[str, Any],
    recipe_file: str | None,
    set_items: list[str],
    flags: dict[str, Any],
    tree: dict[str, Any] | None = None,
) -> Recipe:
    """Apply the precedence chain and validate once at the end (``tree``: a recipe given as a mapping, in the
    place of a file: the Python API's)."""
    given: set[str] = set()  # the keys the user chose (a file, --set, a flag), as against the task's defaults
    if tree is not None:
        given.update(flat_config(tree))
    tree = deep_merge(defaults, tree or {})
    if recipe_file:
        file_tree = read_recipe_file(recipe_file)
        declared = file_tree.get("task")
        if declared is not None and declared != defaults.get("task"):
            raise UserError(
                f"recipe {recipe_file} is for '{declared}', not '{defaults.get('task')}': run `ssl {declared} --recipe {recipe_file}`"
            )
        file_tree = _without_invocation_keys(file_tree, recipe_file)
        tree = deep_merge(tree, file_tree)
        given.update(flat_config(file_tree))
    for item in set_items:
        path, value = parse_set_override(item)
        set_path(tree, path, value)
        given.add(".".join(path))
    for dotted, value in flags.items():
        if value is not None:
            set_path(tree, dotted.split("."), value)
            given.add(dotted)
    recipe = validate_recipe(recipe_cls, tree)
    align_cadences(recipe.training, given)
    return recipe




def flat_config(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The recipe as dotted keys with scalar values (trackers' hparams, resume fingerprints)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


# Properties of one invocation, not of a recipe: a recipe file never switches them on by itself.
INVOCATION_KEYS = ("overwrite",)


def _without_invocation_keys(file_tree: dict[str, Any], recipe_file: str) -> dict[str, Any]:
    """``training.overwrite: true`` in a recipe file is ignored with a note: replacing an output dir takes
    ``--overwrite`` (or ``--set training.overwrite=true``) on the command line that does it."""
    from ssl_cli.errors import note

    training = file_tree.get("training")
    # any value that could turn it on ("true", "yes" and 1 validate as true), not only the boolean
    if not isinstance(training, dict) or all(training.get(key) in (None, False) for key in INVOCATION_KEYS):
        return file_tree
    note(f"{recipe_file} sets training.overwrite: true, ignored: a recipe file never replaces an output dir by "
         "itself; pass --overwrite to do that")
    return {**file_tree, "training": {k: v for k, v in training.items() if k not in INVOCATION_KEYS}}


def saved_recipe(recipe: Recipe) -> Recipe:
    """The recipe as saved with a run: re-running it continues nothing and replaces nothing by itself."""
    saved = recipe.model_copy(deep=True)
    saved.training.overwrite = False
    saved.training.resume = False
    saved.training.resume_from_checkpoint = None
    return saved


def recipe_to_yaml(recipe: Recipe, header: str = "") -> str:
    """The resolved recipe as YAML that is itself a valid recipe."""
    import yaml

    body = yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return (header + "\n" if header else "") + body
