"""Admin for model-group configurations: load (upload or paste) → validate → preview → activate,
and every stored version with rollback.

Permissions: viewing needs ``azure.view_configversion``; loading and activating need
``azure.activate_configversion``. A signed-in user who is not staff gets 403 on every page here
(not the admin's redirect to the login page). Secrets are shown only as their ``${VAR}`` reference
or masked: previews are built from ``Secret.display``, never from a resolved value.
"""

import re

import yaml
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from apps.azure import selectors
from apps.azure.config import ENV_REF, MAX_BYTES, parse_config
from apps.azure.models import ConfigVersion, StoredSecret
from apps.azure.registry import POOLS_SECTION, Registry
from apps.azure.secrets import KEY_NAME, MAX_VALUE_CHARS
from apps.azure.services import ConfigInvalid, activate_version, load_version


class LoadForm(forms.Form):
    file = forms.FileField(required=False, label="Upload a YAML file")
    text = forms.CharField(
        required=False, label="…or paste YAML", widget=forms.Textarea(attrs={"rows": 18, "cols": 100})
    )

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload:
            if upload.size > MAX_BYTES:
                raise forms.ValidationError(f"The file is larger than {MAX_BYTES // 1024} KB.")
            try:
                data["yaml"] = upload.read().decode("utf-8").replace("\r\n", "\n")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
            data["source"] = "admin_upload"
        elif data.get("text", "").strip():
            data["yaml"] = data["text"].replace("\r\n", "\n")
            data["source"] = "admin_paste"
        else:
            raise forms.ValidationError("Upload a file or paste YAML.")
        return data


INLINE_KEY = re.compile(
    r"""(["']?\b(?:api[-_]?key|[\w-]*secret|[\w-]*password|(?:access[-_]?)?token)["']?\s*:\s*)"""
    r"""(["']?\$\{[^}]*\}["']?|[^,}#\n]*[^,}#\s])""",
    re.I,
)
FLOW_HEADERS = re.compile(r"(\badditionalHeaders\s*:\s*)\{[^}]*\}?", re.I)
HEADERS_BLOCK = re.compile(r"^(\s*(?:-\s+)?)additionalHeaders\s*:\s*(#.*)?$", re.I)
HEADER_ENTRY = re.compile(r"^(\s*[^:#\s][^:]*:\s*)([^#]*[^#\s])")
BLOCK_SCALAR = re.compile(r"^[|>][-+0-9]*\s*(#.*)?$")
# Keys whose values are secrets wherever they stand (misspellings of apiKey included).
SECRET_NAME = re.compile(r"^(api[-_]?key|.*secret|.*password|(access[-_]?)?token)$", re.I)
MASK = "•••• (inline)"


def _masked(value):
    """An inline value as the admin may see it: a ``${VAR}`` reference stays, the rest is masked."""
    return value if ENV_REF.fullmatch(value.strip().strip("\"'")) else MASK


def _secret_nodes(text):
    """Scalar nodes holding inline secrets (apiKey in any spelling, header values, keys named
    like secrets), from the parsed YAML; None when the text does not parse."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    found, stack, seen = [], [(root, False)], set()
    while stack:
        node, in_headers = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, in_headers) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else ""
                if isinstance(value, yaml.ScalarNode):
                    if (in_headers or SECRET_NAME.match(name)) and _masked(value.value) == MASK:
                        found.append(value)
                else:
                    stack.append((value, in_headers or name.lower() == "additionalheaders"))
    return found


def _mask_nodes(lines, nodes):
    for node in nodes:
        start, end = node.start_mark, node.end_mark
        last = end.line if end.column or end.line == start.line else end.line - 1
        for number in range(start.line, min(last, len(lines) - 1) + 1):
            line = lines[number]
            if number == start.line:
                tail = line[end.column :] if end.line == start.line else ""
                lines[number] = line[: start.column] + MASK + tail
            else:
                lines[number] = line[: len(line) - len(line.lstrip())] + "••••"
    return lines


def mask_inline_secrets(lines):
    """The YAML lines with inline API keys and header values masked (``${VAR}`` stays visible).

    Masks what the parsed YAML says is secret (any scalar style, multi-line ones included), and
    then by line patterns, which also cover texts that do not parse.
    """
    nodes = _secret_nodes("\n".join(lines))
    lines = _mask_nodes(list(lines), nodes or [])
    masked, header_indent, block_indent = [], None, None
    for line in lines:
        indent = len(line) - len(line.lstrip(" -"))
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                masked.append(line[: len(line) - len(line.lstrip())] + "••••" if line.strip() else line)
                continue
            block_indent = None
        if header_indent is not None and line.strip() and indent <= header_indent:
            header_indent = None
        if header_indent is not None and (match := HEADER_ENTRY.match(line)):
            if BLOCK_SCALAR.match(match.group(2)):
                block_indent = indent
            line = match.group(1) + _masked(match.group(2)) + line[match.end() :]
        elif match := HEADERS_BLOCK.match(line):
            header_indent = len(match.group(1))
        if match := INLINE_KEY.search(line):
            value = match.group(2)
            # A block scalar, or a quoted value that goes on below: its next lines are secret too.
            if BLOCK_SCALAR.match(value) or (value[0] in "\"'" and not value.endswith(value[0])):
                block_indent = indent
        line = INLINE_KEY.sub(lambda m: m.group(1) + _masked(m.group(2)), line)
        line = FLOW_HEADERS.sub(lambda m: m.group(1) + "{" + MASK + "}", line)
        masked.append(line)
    return masked


def numbered_lines(text, problems):
    """[(number, line, [messages])] with each problem's message next to its line; inline
    secrets masked."""
    by_line = {}
    for problem in problems:
        by_line.setdefault(problem.line, []).append(problem)
    lines = mask_inline_secrets(text.split("\n"))
    rows = [(number, line, by_line.pop(number, [])) for number, line in enumerate(lines, start=1)]
    if by_line:  # problems past the end (e.g. an unexpected end of file)
        rows.append((len(lines) + 1, "", [p for ps in by_line.values() for p in ps]))
    return rows


def describe(registry):
    """Groups with their models and where each request goes (display URLs only)."""
    groups = []
    for name, specs in registry.config_groups():
        groups.append({"name": name, "models": [describe_model(spec) for spec in specs]})
    return groups


def describe_pools(registry):
    """Each pool: the name users pick, its members in the order they are tried (with their
    groups), what the pool can do (what every member can) and who may use it."""
    return [
        {
            **describe_model(pool),
            "members": [{"key": m.key, "label": m.label, "group": m.group, "deployment": m.deployment or ""}
                        for m in pool.members],
        }
        for pool in registry.pools()
    ]


def describe_model(spec):
    capabilities = [spec.type]
    if spec.vision:
        capabilities.append("vision")
    if spec.reasoning:
        capabilities.append("reasoning")
    if spec.force_prompt:
        capabilities.append("forcePrompt")
    if spec.serverless:
        capabilities.append("serverless")
    return {
        "key": spec.key,
        "label": spec.label,
        "type": spec.type,
        "deployment": spec.deployment or "",
        "api_version": spec.api_version or "",
        # Numbers for people (1,047,576); an image model has no chat context window.
        "context_window": f"{spec.context_window:,}" if spec.type != "image" else "–",
        "max_output": f"{spec.max_output:,}" if spec.max_output else None,
        "capabilities": ", ".join(capabilities),
        "url": spec.request_url,
        "auth": "Entra ID (DefaultAzureCredential)" if spec.auth_mode == "entra" else "api-key "
        + (spec.target.api_key.display if spec.target and spec.target.api_key else ""),
        "headers": ", ".join(f"{n}: {v.display}" for n, v in spec.target.headers) if spec.target else "",
        "access": describe_access(spec),
    }


def describe_access(spec):
    """The preview's Access column (see apps.azure.access)."""
    from apps.azure.access import EVERYONE

    if spec.access is None or EVERYONE in spec.access:
        return "everyone"
    return ", ".join(spec.access)


def diff(old, new):
    """Models added, removed and changed between two registries (by key)."""
    old_models = {m["key"]: m for g in _sections(old) for m in g["models"]}
    new_models = {m["key"]: (g["name"], m) for g in _sections(new) for m in g["models"]}
    old_groups = {spec.key: spec.group for spec in old.all_models()}
    added = [key for key in new_models if key not in old_models]
    removed = [key for key in old_models if key not in new_models]
    changed = []
    for key, (group, model) in new_models.items():
        before = old_models.get(key)
        if before is None:
            continue
        fields = [
            name
            for name in ("label", "type", "deployment", "api_version", "context_window", "max_output", "capabilities", "url", "auth", "headers", "access")
            if before[name] != model[name]
        ]
        if old_groups.get(key) != group:
            fields.insert(0, "group")
        if fields:
            changed.append({"key": key, "fields": ", ".join(fields)})
    return {"added": added, "removed": removed, "changed": changed, "empty": not (added or removed or changed)}


def _sections(registry):
    pools = describe_pools(registry)
    return [*describe(registry), *([{"name": POOLS_SECTION, "models": pools}] if pools else [])]


def preview_context(text, result, active):
    new = Registry(result.config)
    old = _registry_of(active)
    return {
        "groups": describe(new),
        "pools": describe_pools(new),
        "registry": new,
        "diff": diff(old, new),
        "warnings": result.warnings,
        "lines": numbered_lines(text, result.warnings),
    }


def health_context(registry):
    """The health page: this process's rows (apps.azure.health.snapshot), every configured
    deployment's shared state, and the pools with their members' states."""
    import os
    import socket

    from apps.azure import health

    rows = health.snapshot()
    for row in rows:
        row["error_percent"] = f"{row['error_rate']:.0%}"
        row["limited_percent"] = f"{row['rate_limited_rate']:.0%}"
        for name in ("latency_p50", "latency_p95"):
            row[name] = "–" if row[name] is None else f"{row[name]:.2f} s"
        row["cooling"] = f"{row['cooling']:.0f} s" if row["cooling"] else ""
    specs = [s for s in registry.all_models() if not s.members]
    keys = list(dict.fromkeys(health.key_of(spec) for spec in specs))
    shared = health.shared(keys)
    everywhere = [
        {"group": g, "deployment": d, "state": shared.get((g, d), {}).get("state", health.OK),
         "cooling": f"{health.shared_cooling(shared.get((g, d))):.0f} s" if health.shared_cooling(shared.get((g, d))) else ""}
        for g, d in keys
    ]
    pools = [
        {"key": pool.key, "members": [
            {"key": m.key, "group": m.group,
             "state": shared.get(health.key_of(m), {}).get("state", health.state(health.key_of(m)))}
            for m in pool.members]}
        for pool in registry.pools()
    ]
    return {
        "rows": rows, "shared": everywhere, "pools": pools,
        "process": f"{socket.gethostname()}:{os.getpid()}",
        "window": int(health.WINDOW), "recent": int(health.RECENT),
    }


def _registry_of(version):
    if version is None:
        return Registry()
    result = parse_config(version.text)
    return Registry(result.config, version_id=version.pk) if result.config else Registry()


@admin.register(ConfigVersion)
class ConfigVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "source", "created", "created_by", "is_active")

    def has_add_permission(self, request):
        return request.user.has_perm("azure.activate_configversion")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("azure.view_configversion") or request.user.has_perm(
            "azure.activate_configversion"
        )

    def get_urls(self):
        return [
            path("", self._guard(self.versions_view), name="azure_configversion_changelist"),
            path("add/", self._guard(self.load_view), name="azure_configversion_add"),
            path("<int:pk>/", self._guard(self.version_view), name="azure_configversion_change"),
            path("<int:pk>/activate/", self._guard(self.activate_view), name="azure_configversion_activate"),
            path("health/", self._guard(self.health_view), name="azure_health"),
        ]

    def _guard(self, view):
        """Non-staff signed-in users get 403 (the admin would redirect them to the login page)."""
        wrapped = self.admin_site.admin_view(view)

        def guarded(request, *args, **kwargs):
            if request.user.is_authenticated and not request.user.is_staff:
                raise PermissionDenied
            return wrapped(request, *args, **kwargs)

        return guarded

    def _context(self, request, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "can_activate": request.user.has_perm("azure.activate_configversion"),
            **extra,
        }

    def versions_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        versions = selectors.versions()
        return TemplateResponse(
            request,
            "admin/azure/configversion/versions.html",
            self._context(request, title="Model-group configurations", versions=versions),
        )

    def load_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        context = self._context(request, title="Load a model-group configuration")
        form = LoadForm(request.POST or None, request.FILES or None)
        context["form"] = form
        if request.method == "POST" and form.is_valid():
            text = form.cleaned_data["yaml"]
            # A valid text is stored at once as an inactive version: the preview's Activate
            # button then names that version, so the YAML never round-trips through the page.
            version, result = load_version(
                text=text, source=form.cleaned_data["source"], user=request.user
            )
            if result.errors:
                context.update(errors=result.errors, warnings=result.warnings, lines=numbered_lines(text, result.errors + result.warnings))
            else:
                active = selectors.active_version()
                context.update(preview_context(text, result, active))
                context.update(version=version, previewing=True)
        return TemplateResponse(request, "admin/azure/configversion/load.html", context)

    def version_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ConfigVersion, pk=pk)
        result = parse_config(version.text)
        context = self._context(request, title=str(version), version=version)
        if result.errors:
            context.update(errors=result.errors, lines=numbered_lines(version.text, result.errors))
        else:
            active = selectors.active_version()
            context.update(preview_context(version.text, result, active))
        return TemplateResponse(request, "admin/azure/configversion/version.html", context)

    def health_view(self, request):
        """Deployment health (staff): this process's rolling view and the shared one."""
        from apps.azure.registry import get_registry

        context = self._context(request, title="Deployment health", **health_context(get_registry()))
        return TemplateResponse(request, "admin/azure/configversion/health.html", context)

    def activate_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("azure.activate_configversion"):
            raise PermissionDenied
        version = get_object_or_404(ConfigVersion, pk=pk)
        try:
            activate_version(version=version, user=request.user)
        except ConfigInvalid as exc:
            messages.error(
                request,
                f"Version {version.pk} can't be activated here: {len(exc.result.errors)} error(s), shown below.",
            )
        else:
            messages.success(request, f"Configuration version {version.pk} is now active.")
        return redirect(reverse("admin:azure_configversion_change", args=[version.pk]))


class StoredSecretForm(forms.ModelForm):
    """Name and value of a stored key; the value is write-only (never rendered back)."""

    value = forms.CharField(
        required=False, strip=True, max_length=MAX_VALUE_CHARS,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Shown never again. Leave empty to keep the stored value.",
    )

    class Meta:
        model = StoredSecret
        fields = ("name",)
        help_texts = {"name": "Referenced in the YAML as ${secret:NAME} (letters, digits, _)."}

    def clean_name(self):
        name = self.cleaned_data["name"]
        if not KEY_NAME.match(name):
            raise forms.ValidationError("Use letters, digits and _ only, not starting with a digit (at most 64).")
        return name

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("value"):
            self.add_error("value", "Type the key's value.")
        if any(ch in (data.get("value") or "") for ch in "\r\n\x00"):
            self.add_error("value", "The value can't hold line breaks or NUL characters.")
        return data

    def save(self, commit=True):
        secret = super().save(commit=False)
        if self.cleaned_data.get("value"):
            secret.set_value(self.cleaned_data["value"])
        if commit:
            secret.save()
        return secret


@admin.register(StoredSecret)
class StoredSecretAdmin(admin.ModelAdmin):
    """Keys typed here are encrypted at rest and referenced from the YAML as ``${secret:NAME}``;
    the registry of every process picks up a change within a second."""

    form = StoredSecretForm
    list_display = ("name", "reference", "updated", "updated_by")
    readonly_fields = ("updated", "updated_by")
    search_fields = ("name",)

    @admin.display(description="In the YAML")
    def reference(self, obj):
        return f"${{secret:{obj.name}}}"

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
