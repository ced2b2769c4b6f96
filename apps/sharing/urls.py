from django.urls import path

from apps.sharing import views

app_name = "sharing"

urlpatterns = [
    path("c/<uuid:conversation_id>/share/", views.conversation_share, name="conversation"),
    path("shares/", views.share_list, name="list"),
    path("shares/<uuid:share_id>/revoke", views.revoke, name="revoke"),
    path("s/<str:token>/", views.view_share, name="view"),
    path("s/<str:token>/continue", views.continue_copy, name="continue"),
    path("s/<str:token>/images/<uuid:image_id>/", views.image, name="image"),
    path("s/<str:token>/images/<uuid:image_id>/thumbnail/", views.thumbnail, name="thumbnail"),
]
