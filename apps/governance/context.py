"""Template context: what the interface says about governance ("kept for 90 days")."""


def retention(request):
    """``retention_days``: the signed-in user's retention in days (None: kept for good), read
    only by a template that shows it (a callable: other pages cost no query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def days():
        from apps.governance.retention import days_for

        return days_for(user=user)

    return {"retention_days": days}
