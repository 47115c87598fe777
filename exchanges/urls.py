"""URL routes of the exchanges app: the exchange simulator's two dialects on one engine, Binance's
spot REST (/api/v3, /sapi/v1) and OKX's v5 REST (/api/v5)."""
from django.urls import path

from .simulator import okx_views, views

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
    path("sapi/v1/capital/withdraw/apply", views.withdraw_apply),
    path("sapi/v1/capital/withdraw/history", views.withdraw_history),
    # OKX v5 (okx_views.py)
    path("api/v5/public/time", okx_views.public_time),
    path("api/v5/public/instruments", okx_views.instruments),
    path("api/v5/market/books", okx_views.books),
    path("api/v5/market/books-full", okx_views.books),
    path("api/v5/market/ticker", okx_views.ticker),
    path("api/v5/market/tickers", okx_views.tickers),
    path("api/v5/asset/currencies", okx_views.currencies),
    path("api/v5/asset/deposit-address", okx_views.deposit_address),
    path("api/v5/asset/deposit-history", okx_views.deposit_history),
    path("api/v5/asset/withdrawal", okx_views.withdrawal),
    path("api/v5/asset/withdrawal-history", okx_views.withdrawal_history),
    path("api/v5/account/balance", okx_views.account_balance),
    path("api/v5/account/trade-fee", okx_views.trade_fee),
    path("api/v5/trade/order", okx_views.order_dispatch),
    path("api/v5/trade/batch-orders", okx_views.place_batch_orders),
    path("api/v5/trade/cancel-order", okx_views.cancel_order),
    path("api/v5/trade/cancel-batch-orders", okx_views.cancel_batch_orders),
    path("api/v5/trade/orders-pending", okx_views.orders_pending),
    path("api/v5/trade/orders-history", okx_views.orders_history),
    path("api/v5/trade/orders-history-archive", okx_views.orders_history),
    path("api/v5/trade/fills", okx_views.fills),
    path("api/v5/trade/fills-history", okx_views.fills),
]
