from django.urls import path

from . import views

urlpatterns = [
    path("", views.tiles, name="tiles"),
    path("sleep/", views.sleep, name="sleep"),
]
