"""Operator commands' error contract: bad input (arguments, ids, files) is one line on stderr and exit 2.

``OperatorCommand`` is a ``BaseCommand`` whose argument errors print one line
(``manage.py stop_mm: error: ... (see --help)``) instead of argparse's usage block, and whose
``domain_errors`` (e.g. ``OrderNotFound``) become ``CommandError: <message>`` with exit status 2.
``UsageError`` is a ``CommandError`` with status 2 for input a command rejects itself.
Failures that are not the caller's fault (drift found, an exchange still busy) keep their own
status (1) so a script can tell "you asked wrongly" from "the system is not in order".
"""
from __future__ import annotations

import argparse
import uuid

from django.core.management.base import BaseCommand, CommandError, CommandParser

BAD_INPUT_STATUS = 2


class UsageError(CommandError):
    """Input the command refuses (unknown id, unreadable file, malformed value): exit status 2."""

    def __init__(self, message: str):
        super().__init__(message, returncode=BAD_INPUT_STATUS)


class _OneLineErrorParser(CommandParser):
    def error(self, message):
        if self.called_from_command_line:
            self.exit(BAD_INPUT_STATUS, f"{self.prog}: error: {message} (see --help)\n")
        raise CommandError(f"Error: {message}", returncode=BAD_INPUT_STATUS)


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:  # argparse keeps sub-parsers only on its (private) actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


class OperatorCommand(BaseCommand):
    """Base of the operator commands: one-line errors, exit 2 on bad input."""

    #: exception classes that mean the caller's input was wrong (reported as one line, exit 2)
    domain_errors: tuple[type[BaseException], ...] = ()

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        for each in _parsers(parser):
            if type(each) is CommandParser:
                each.__class__ = _OneLineErrorParser
        return parser

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except self.domain_errors as exc:
            raise UsageError(" ".join(str(exc).split()) or type(exc).__name__) from exc


def uuid_argument(text: str) -> str:
    """argparse ``type=`` for an id that must be a UUID (an order id, a pair id): refused before any query."""

    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None
