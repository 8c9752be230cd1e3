from django.urls import path

from . import views

urlpatterns = [
    path("", views.tiles, name="tiles"),
    path("ajax/", views.ajax, name="ajax"),
    path("sleep/", views.sleep, name="sleep"),
    path("video/", views.video, name="video"),
    path("events/", views.events, name="events"),
    path("poll/", views.poll, name="poll"),
]
