"""Each front door maps every domain failure once; the domain errors themselves carry no status or code."""
from __future__ import annotations

import inspect

import pytest

from authserver import errors
from authserver.api.auth import CsrfFailed
from authserver.api.problems import DOMAIN_PROBLEMS, status_and_title
from authserver.cli.output import EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNAUTHENTICATED, exit_code
from authserver.console.feedback import DOMAIN_PAGES, error_page_text, status_of
from authserver.keyfetch import KeyFetchError

DOMAIN_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                  if issubclass(cls, errors.DomainError)] + [KeyFetchError, CsrfFailed]


@pytest.mark.parametrize("cls", DOMAIN_CLASSES, ids=lambda cls: cls.__name__)
def test_domain_errors_carry_no_door_detail(cls):
    for attribute in ("status", "title", "exit_code"):
        assert not hasattr(cls("x"), attribute), f"{cls.__name__}.{attribute}: a door's detail in the domain"


@pytest.mark.parametrize("cls", DOMAIN_CLASSES, ids=lambda cls: cls.__name__)
def test_every_door_maps_every_domain_error(cls):
    exc = cls("what went wrong")
    status, title = status_and_title(exc)
    assert 400 <= status < 500 and title
    assert 400 <= status_of(exc) < 500
    assert error_page_text(exc)[2].startswith("what went wrong")
    assert exit_code(exc) >= 2


@pytest.mark.parametrize("cls,api_status,cli_code", [
    (errors.InvalidInput, 400, EXIT_INVALID), (errors.PublicClientRefused, 400, EXIT_INVALID),
    (errors.NotFound, 404, EXIT_NOT_FOUND), (errors.Conflict, 409, EXIT_CONFLICT),
    (errors.InvalidToken, 401, EXIT_UNAUTHENTICATED), (errors.InsufficientScope, 403, 5), (CsrfFailed, 403, 5),
])
def test_the_mappings_agree_on_the_class(cls, api_status, cli_code):
    exc = cls("x")
    assert status_and_title(exc)[0] == api_status == status_of(exc)
    assert exit_code(exc) == cli_code


def test_the_most_specific_class_comes_first():
    for table in (DOMAIN_PROBLEMS, DOMAIN_PAGES):
        kinds = [row[0] for row in table]
        for index, kind in enumerate(kinds):
            assert not any(issubclass(kind, earlier) for earlier in kinds[:index]), f"{kind.__name__} is shadowed"
