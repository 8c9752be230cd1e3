from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("sleep/", views.sleep),
    path("admin/", admin.site.urls),
    path("test/headers/", views.headers),
    path("test/client/", views.client),
    path("test/pid/", views.pid),
    path("test/slow-redirect/", views.slow_redirect),
    path("test/file-response/", views.file_response),
    path("test/users/", views.user_count),
]
