"""A request's cache directives per ``LLM_CACHES`` alias: its scope and its header directives.

``OPTIONS["SCOPE"]``: ``None`` (one shared cache), ``"user"`` (a request by user pk 42 is in
scope ``"user:42"``; anonymous requests are unscoped) or the dotted path of a
``callable(request) -> str | None``. ``OPTIONS["REQUEST_DIRECTIVES"]`` (off by default):
``{"header": "LLM-Cache-Control", "permission": "..."}``; the header's value is a mode
(``refresh``, ``no-store``, ``off``), honoured only for a user with the permission. A
browser's own ``Cache-Control`` is never read: a hard reload must not cost a model call.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from llmcache_django.backends.handler import configured_aliases, llm_caches
from llmcache_django.conf import AliasSettings, alias_settings
from llmcache_django.core.control import MODES, Directives, directives

logger = logging.getLogger("llmcache_django")
USER_SCOPE = "user"


def user_scope(pk: Any) -> str:
    """The scope of the requests of the user with primary key ``pk``."""
    return f"user:{pk}"


def request_directives(request: HttpRequest, user: Any) -> dict[str, Directives] | None:
    """The directives of ``request`` (by ``user``) for each alias that sets any; ``None`` for none."""
    found = {}
    for alias in configured_aliases():
        settings = alias_settings(alias)
        given = _alias_directives(settings, request, user)
        if given is not None:
            found[alias] = given
    return found or None


def _alias_directives(settings: AliasSettings, request: HttpRequest, user: Any) -> Directives | None:
    scope = request_scope(settings, request, user)
    mode = header_mode(settings, request, user)
    return None if scope is None and mode is None else directives(mode, scope=scope)


def request_scope(settings: AliasSettings, request: HttpRequest, user: Any) -> str | None:
    """The scope of ``request`` on the alias of ``settings``."""
    if settings.scope is None:
        return None
    if settings.scope == USER_SCOPE:
        return user_scope(user.pk) if user is not None and user.is_authenticated else None
    scope: str | None = import_string(settings.scope)(request)
    return scope


def header_mode(settings: AliasSettings, request: HttpRequest, user: Any) -> str | None:
    """The mode ``request``'s directives header asks for, when the alias reads it and the user may."""
    config = settings.request_directives
    if config is None:
        return None
    value = request.headers.get(config["header"])
    if not value:
        return None
    permission = config.get("permission")
    if permission is not None and (user is None or not user.has_perm(permission)):
        logger.debug("LLM cache %r: %s header ignored: the user lacks %s", settings.alias, config["header"], permission)
        return None
    mode = value.strip().lower()
    if mode not in MODES:
        logger.debug(
            "LLM cache %r: %s header %r ignored: not one of %s", settings.alias, config["header"], value, MODES
        )
        return None
    return mode


def erase_user_scope(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` of a user: erase their scope on every alias with ``SCOPE = "user"``."""
    scope = user_scope(instance.pk)
    for alias in configured_aliases():
        if alias_settings(alias).scope != USER_SCOPE:
            continue
        try:
            llm_caches[alias].clear_scope(scope)
        except Exception:
            logger.exception(
                "LLM cache %r: erasing scope %r of a deleted user failed; run clear_llm_cache --scope", alias, scope
            )
