"""ExchangeAccount gets what ccxt needs for more than Binance: the API passphrase (ccxt's
``password``: OKX, KuCoin, Bitget), stored as a Fernet token like the secret; the ``uid`` some
exchanges sign with; and a sandbox flag (ccxt ``set_sandbox_mode``).
"""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('exchanges', '0003_simulator_volatility_per_second'),
    ]

    operations = [
        migrations.AddField(
            model_name='exchangeaccount',
            name='api_passphrase_encrypted',
            field=models.TextField(blank=True, editable=False, help_text="ccxt's password (OKX, KuCoin, Bitget...), Fernet token"),
        ),
        migrations.AddField(
            model_name='exchangeaccount',
            name='uid',
            field=models.CharField(blank=True, help_text='ccxt uid, for exchanges that need one', max_length=128),
        ),
        migrations.AddField(
            model_name='exchangeaccount',
            name='sandbox',
            field=models.BooleanField(default=False, help_text="use the exchange's sandbox (ccxt set_sandbox_mode)"),
        ),
    ]
