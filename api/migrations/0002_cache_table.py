"""Create the database cache table(s) of settings.CACHES (the default cache is the database's),
so a migrated database is ready for the API's rate limit; with a Redis CACHE_URL it does nothing."""
from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):

    dependencies = [("api", "0001_initial")]

    operations = [migrations.RunPython(create_cache_tables, migrations.RunPython.noop)]
