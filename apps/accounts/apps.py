from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self):
        from django.core import checks

        from apps.accounts.checks import check_sign_in

        checks.register(check_sign_in)
        import project.origins  # noqa: F401  (registers the deploy check lapis.W201)
        self._connect_session_signals()
        from apps.accounts.first_run import announce_setup_token
        from project.lifecycle import at_startup

        at_startup(announce_setup_token)

    def _connect_session_signals(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

        from apps.accounts import sessions

        User = get_user_model()
        user_logged_out.connect(sessions.on_logged_out, dispatch_uid="lapis-sessions-logout")
        pre_save.connect(sessions.on_user_pre_save, sender=User, dispatch_uid="lapis-sessions-pre")
        post_save.connect(sessions.on_user_saved, sender=User, dispatch_uid="lapis-sessions-post")
        post_delete.connect(sessions.on_user_deleted, sender=User, dispatch_uid="lapis-sessions-del")
        m2m_changed.connect(sessions.on_groups_changed, sender=User.groups.through, dispatch_uid="lapis-sessions-groups")
