"""URL routes: admin, the JSON API, metrics, and the exchange simulator's HTTP API."""
from django.contrib import admin
from django.urls import include, path

from mmproject.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include("api.urls")),
    path("", include("exchanges.urls")),
]
