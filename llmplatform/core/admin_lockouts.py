"""The admin page that lists sign-in lock-outs and unlocks a user name or address."""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from llmplatform.core.login_guard import lockout_clear, lockouts_current


class UnlockForm(forms.Form):
    subject = forms.CharField(
        label="User name or client address", max_length=256, strip=True, required=True
    )


def lockouts_view(request: HttpRequest) -> HttpResponse:
    """GET: current lock-outs; POST ``subject``: unlock it. Superusers only."""
    if not request.user.is_superuser:
        raise PermissionDenied
    form = UnlockForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        subject = form.cleaned_data["subject"]
        if lockout_clear(subject=subject):
            messages.success(request, f"Unlocked {subject!r}: it can sign in again.")
        else:
            messages.info(request, f"{subject!r} was not locked out; its counters are reset.")
        return HttpResponseRedirect(request.path)
    rows = [
        {
            "kind": lockout.kind,
            "subject": lockout.subject,
            "until": datetime.fromtimestamp(lockout.until, UTC),
        }
        for lockout in lockouts_current()
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in lock-outs",
        "lockouts": rows,
        "form": form,
    }
    return TemplateResponse(request, "admin/lockouts.html", context)
