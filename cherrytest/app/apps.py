from django.apps import AppConfig


class SampleAppConfig(AppConfig):
    name = "cherrytest.app"
    label = "app"
    verbose_name = "cherrytest sample"
