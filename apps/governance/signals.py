"""What makes the cached lists of budgets (apps.governance.quotas.budgets_for) stale."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from apps.governance.models import Budget
from apps.governance.quotas import budgets_changed


@receiver(post_save, sender=Budget)
@receiver(post_delete, sender=Budget)
def budget_changed(sender, **kwargs):
    budgets_changed()


@receiver(m2m_changed, sender=get_user_model().groups.through)
def membership_changed(sender, action, **kwargs):
    if action in ("post_add", "post_remove", "post_clear"):
        budgets_changed()
