"""Who may use which model: the ``access`` lists of the active config against a user's groups.

A model with no rule (neither its own ``access`` nor its group's) is for everyone signed in; a
rule lists Lapis group names (for company sign-in: the IdP's group ids and app-role names, synced
at every sign-in), and any one of them is enough; ``"*"`` is everyone. Staff and superusers follow the same rules.
Titles and summaries run with their configured model whatever the user's access (they are the
installation's, not the user's choice).
"""

from asgiref.sync import sync_to_async


class ModelNotAllowed(Exception):
    """``str()`` is the message for the person: which model, which groups, what to do."""


def group_names(user):
    """The names of ``user``'s groups (one query; not cached on the user, whose groups may
    change while a socket holds the same object)."""
    if not user.is_authenticated:
        return frozenset()
    return frozenset(user.groups.values_list("name", flat=True))


EVERYONE = "*"  # in an access list: every signed-in user (to open one model of a closed group)


def is_open(spec):
    """True when ``spec`` is for everyone, so no group needs to be read."""
    return spec.access is None or EVERYONE in spec.access


def allows(spec, groups):
    return is_open(spec) or bool(set(spec.access) & groups)


def why(spec, groups):
    """One line for the admin: why this user does or does not get ``spec``."""
    if spec.access is None:
        return "no access rule: everyone"
    if EVERYONE in spec.access:
        return 'access lists "*": everyone'
    matched = sorted(set(spec.access) & groups)
    if matched:
        return "member of " + ", ".join(matched)
    return "needs one of " + ", ".join(spec.access)


def refusal(spec):
    return ModelNotAllowed(
        f"You may not use the model {spec.label!r}: it is for members of "
        f"{', '.join(spec.access)}. Pick another model, or ask an admin for access."
    )


def check(*, user, spec):
    """Raise ModelNotAllowed unless ``user`` may use ``spec`` (sync: may read the groups)."""
    if not is_open(spec) and not allows(spec, group_names(user)):
        raise refusal(spec)


async def acheck(*, user, spec):
    await sync_to_async(check)(user=user, spec=spec)


class UserModels:
    """A registry filtered to one user's models; everything else (title model, flags, version)
    is the registry's own. ``get`` answers None for a model the user may not use."""

    def __init__(self, registry, *, user):
        self.registry = registry
        self.user = user
        # Read here (callers build the view in sync code) and only when some model has a rule:
        # a config without access rules costs no query per answer.
        closed = any(not is_open(spec) for spec in registry.all_models())
        self.group_names = group_names(user) if closed else frozenset()

    def __getattr__(self, name):
        return getattr(self.registry, name)

    def allows(self, spec):
        return is_open(spec) or allows(spec, self.group_names)

    def get(self, key):
        spec = self.registry.get(key)
        return spec if spec is not None and self.allows(spec) else None

    def all_models(self):
        return [s for s in self.registry.all_models() if self.allows(s)]

    def chat_models(self):
        return [s for s in self.registry.chat_models() if self.allows(s)]

    def image_models(self):
        return [s for s in self.registry.image_models() if self.allows(s)]

    def embedding_models(self):
        return [s for s in self.registry.embedding_models() if self.allows(s)]

    def groups(self):
        groups = [(name, [s for s in specs if self.allows(s)]) for name, specs in self.registry.groups()]
        return [(name, specs) for name, specs in groups if specs]

    def first_vision_model(self):
        return next((s for s in self.chat_models() if s.vision), None)

    @property
    def is_empty(self):
        return not self.all_models()


def explain(*, user, registry):
    """For the admin: every configured model with whether ``user`` gets it and why."""
    groups = group_names(user)
    return [
        {"key": spec.key, "label": spec.label, "group": spec.group, "type": spec.type,
         "allowed": allows(spec, groups), "why": why(spec, groups)}
        for spec in registry.all_models()
    ]
