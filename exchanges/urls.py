"""URL routes of the exchanges app: the exchange simulator's Binance-compatible REST API."""
from django.urls import path

from .simulator import views

urlpatterns = [
    path("api/v3/ping", views.ping),
    path("api/v3/time", views.server_time),
    path("api/v3/exchangeInfo", views.exchange_info),
    path("api/v3/depth", views.depth),
    path("api/v3/ticker/24hr", views.ticker_24hr),
    path("api/v3/ticker/price", views.ticker_price),
    path("api/v3/ticker/bookTicker", views.ticker_book),
    path("api/v3/order", views.order),
    path("api/v3/openOrders", views.open_orders),
    path("api/v3/allOrders", views.all_orders),
    path("api/v3/account", views.account_info),
    path("api/v3/myTrades", views.my_trades),
    path("sapi/v1/capital/deposit/address", views.deposit_address),
    path("sapi/v1/capital/deposit/hisrec", views.deposit_history),
]
