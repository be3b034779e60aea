"""``pzeo evolve INI``: list, run or mark the app's evolve steps; rename
stored classes.

The steps are the ones the ini's app registers with
``config.add_evolution_step`` (see :mod:`pyramid_zeostore.evolve`): the
app is loaded as ``pserve`` loads it, with ``zeostore.autoevolve``
suspended, and the record of finished steps is read from its primary
database. ``--rename old.module.Class=new.module.Class`` rewrites the
class references of every stored record with zodbupdate, through the ZEO
server (its ``record_iternext``) while it serves, or in a FileStorage
that no server has open.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import time
import traceback
from typing import Any

from pyramid.config import global_registries
from pyramid.paster import get_app, setup_logging
from zodbupdate.update import Updater

from ..connection import get_databases
from ..databases import Databases
from ..evolve import EvolveError, Evolver, Step, get_steps, suspended
from ..interfaces import IAppmaker
from . import (
    CommandError,
    add_ini,
    add_quiet,
    load_app,
    load_settings,
    progress,
    select,
    split_config_uri,
)

ORDER = 55


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        'evolve',
        help='list, run or mark evolve steps; rename stored classes',
        description='List the evolve steps of the ini\'s app (pending, '
        'and finished with when and by whom); --run runs the pending '
        'ones in order, each in its own transactions; --dry-run runs '
        'them and aborts; --mark-finished NAME records a step as done '
        'without running it. --rename OLD=NEW rewrites the stored '
        'references to class OLD (module.Class) as NEW, in every '
        'database or the one --db names (zodbupdate). Exit status 1 if '
        'a step fails or another process holds the evolve claim too '
        'long.',
    )
    add_ini(parser)
    add_quiet(parser)
    what = parser.add_mutually_exclusive_group()
    what.add_argument('--run', action='store_true',
                      help='run the pending steps')
    what.add_argument(
        '--mark-finished', metavar='NAME', default=None,
        help='record step NAME as finished without running it',
    )
    parser.add_argument(
        '--dry-run', action='store_true',
        help='run the pending steps (or the renames) and abort: nothing '
        'is committed',
    )
    parser.add_argument(
        '--rename', metavar='OLD=NEW', action='append', type=_rename,
        default=[],
        help='rewrite stored references to class OLD (old.module.Class) '
        'as NEW (new.module.Class); repeatable',
    )
    parser.add_argument(
        '--db', metavar='NAME', default=None,
        help='--rename only in this database: its name or its key '
        '(zodb_uri.NAME); default: every database of the ini',
    )
    parser.add_argument(
        '--wait', type=float, default=60.0, metavar='SECONDS',
        help='wait at most this long for another process that is running '
        'the steps (default 60)',
    )
    parser.set_defaults(func=run)


def _rename(text: str) -> tuple[tuple[str, str], tuple[str, str]]:
    old, sep, new = text.partition('=')
    pair = []
    for dotted in (old.strip(), new.strip()):
        module, dot, name = dotted.rpartition('.')
        if not (sep and dot and module and name):
            raise argparse.ArgumentTypeError(
                f'expected old.module.Class=new.module.Class, got {text!r}'
            )
        pair.append((module, name))
    if pair[0] == pair[1]:
        raise argparse.ArgumentTypeError(
            f'{text!r} renames a class to itself'
        )
    new_module, new_name = pair[1]
    try:  # the class the records are to name must exist in the code
        found = getattr(importlib.import_module(new_module), new_name)
    except Exception as e:  # noqa: BLE001 - any failure of an import
        raise argparse.ArgumentTypeError(
            f'{new_module}.{new_name} cannot be imported '
            f'({type(e).__name__}: {e}): the new name must be the class '
            'as the code has it now'
        ) from None
    if not isinstance(found, type):
        raise argparse.ArgumentTypeError(
            f'{new_module}.{new_name} is not a class'
        )
    return pair[0], pair[1]


def run(args: argparse.Namespace) -> int:
    if args.rename:
        if args.run or args.mark_finished:
            raise CommandError(
                '--rename goes alone (with --dry-run or --db): run the '
                'steps in another pzeo evolve', 2,
            )
        return rename(args)
    if args.dry_run and args.mark_finished is not None:
        raise CommandError('--dry-run goes with --run or --rename, not '
                           '--mark-finished', 2)
    if args.db is not None:
        raise CommandError('--db goes with --rename (steps run on the '
                           'primary database)', 2)
    registry = load_registry(args)
    databases = get_databases(registry)
    try:
        evolver = Evolver(
            databases.get(''), get_steps(registry).ordered(),
            registry.queryUtility(IAppmaker),
            progress=lambda desc: progress(args, desc, unit='objects'),
        )
        if args.mark_finished is not None:
            return mark(evolver, args.mark_finished)
        if args.run or args.dry_run:
            return run_steps(evolver, args)
        return show(evolver)
    finally:
        databases.close()


def load_registry(args: argparse.Namespace) -> Any:
    """The registry of the ini's app, loaded with autoevolve off."""
    path, section = split_config_uri(args)
    setup_logging(path)
    with suspended():
        app = load_app(path, section, lambda: get_app(path, section))
    # A Router has its registry; a pipeline hides it, but making the
    # Router registered it globally.
    return getattr(app, 'registry', None) or global_registries.last


def show(evolver: Evolver) -> int:
    finished, pending, new = evolver.status()
    names = {step.name for step in evolver.steps}
    if not evolver.steps:
        print('no evolve steps registered (config.add_evolution_step)')
    for name, info in finished.items():
        gone = '' if name in names else ' (no longer registered)'
        print(f'finished  {name}: {info.get("at")} by {info.get("by")} '
              f'on {info.get("host")} pid {info.get("pid")}{gone}')
    for step in pending:
        print(f'pending   {step.name}')
    if new and pending:
        print('new database: --run marks these finished without '
              'running them (its app root is made in the current shape)')
    print(f'{len(pending)} pending, {len(finished)} finished')
    return 0


def run_steps(evolver: Evolver, args: argparse.Namespace) -> int:
    def announce(step: Step) -> None:
        print(f'running {step.name} ...', flush=True)

    started = time.monotonic()
    try:
        results = evolver.run(
            dry_run=args.dry_run, wait=args.wait, announce=announce
        )
    except EvolveError as e:
        raise CommandError(str(e), 1) from None
    except Exception:
        traceback.print_exc()
        print('FAILED: the step is still pending; nothing of its last '
              'transaction was committed')
        return 1
    for result in results:
        what = ('finished meanwhile by another process' if result.skipped
                else f'done in {result.seconds:.2f}s')
        extra = f', {result.objects} objects' if result.objects else ''
        tries = (f', {result.attempts} attempts' if result.attempts > 1
                 else '')
        print(f'{result.name}: {what}{extra}{tries}')
    verb = 'ran and aborted (dry run)' if args.dry_run else 'ran'
    print(f'{verb} {len(results)} steps in '
          f'{time.monotonic() - started:.2f}s')
    return 0


def mark(evolver: Evolver, name: str) -> int:
    names = [step.name for step in evolver.steps]
    if name not in names:
        raise CommandError(
            f'no evolve step {name!r}; the steps are: '
            f'{", ".join(names) or "none"}', 2,
        )
    if evolver.mark_finished(name):
        print(f'{name}: marked finished')
    else:
        print(f'{name}: already finished')
    return 0


class ProgressUpdater(Updater):
    """zodbupdate's Updater, counting records read and rewritten."""

    def __init__(self, storage: Any, shown: Any, **kw: Any) -> None:
        super().__init__(storage, **kw)
        self.shown = shown
        self.changed = 0
        rename = self.processor.rename

        def counting(input_file: Any) -> Any:
            new = rename(input_file)
            if new is not None:
                self.changed += 1
            return new

        self.processor.rename = counting

    @property
    def records(self) -> Any:
        for record in super().records:
            self.shown.update(1)
            yield record


class Skipped(logging.Handler):
    """Counts the records zodbupdate logs as left unchanged (a record
    it cannot write again): a rename that skipped one did not finish."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def rename(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    renames = dict(args.rename)
    skipped = Skipped()
    logging.getLogger('zodbupdate').addHandler(skipped)
    try:
        _rename_in(args, settings, renames)
    finally:
        logging.getLogger('zodbupdate').removeHandler(skipped)
    if skipped.count:
        print(f'FAILED: {skipped.count} records could not be rewritten '
              '(see the errors above); they still name the old classes')
        return 1
    return 0


def _rename_in(
    args: argparse.Namespace, settings: Any, renames: dict
) -> None:
    for spec in select(settings.databases, args.db):
        databases = Databases([spec], settings.connect_timeout)
        try:
            db = databases.get(spec.name)
            with progress(args, f'rename in {spec.key}',
                          db.objectCount()) as shown:
                updater = ProgressUpdater(
                    db.storage, shown, dry=args.dry_run, renames=renames
                )
                try:
                    updater()
                except SystemExit as e:  # its "don't know how to iterate"
                    raise CommandError(
                        f'{spec.key}: zodbupdate cannot read this storage '
                        f'({e})', 2,
                    ) from None
        finally:
            databases.close()
        verb = 'would rewrite' if args.dry_run else 'rewrote'
        print(f'{spec.key}: {verb} {updater.changed} records')
