"""URL routes of the user's API (included under /api/) and its OpenAPI schema."""
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import views

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[],
                                               throttle_classes=[]), name="api-schema"),
    path("pairs/", views.PairListView.as_view(), name="pair-list"),
    path("orders/", views.OrderListCreateView.as_view(), name="order-list"),
    path("orders/<str:order_id>/", views.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:order_id>/history/", views.OrderHistoryView.as_view(), name="order-history"),
    path("orders/<str:order_id>/params/", views.OrderParamsView.as_view(), name="order-params"),
    path("orders/<str:order_id>/stop/", views.OrderStopView.as_view(), name="order-stop"),
    path("orders/<str:order_id>/payout/", views.OrderPayoutView.as_view(), name="order-payout"),
]
