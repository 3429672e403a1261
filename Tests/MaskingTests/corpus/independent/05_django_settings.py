import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = 'django-insecure-boxm===l1tgp9c%nhk-+6tsg5+gnqz5!+#6d+h81a*vb=g0sf0'

DEBUG = False
ALLOWED_HOSTS = ['api.example.com']

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.postgresql',
        'NAME': 'orders',
        'USER': 'orders_app',
        'PASSWORD': 'f*-i2*eD*K!pKM#%GgSNPM',
        'HOST': 'db.prod.internal',
        'PORT': '5432',
    }
}

EMAIL_HOST = 'smtp.mailgun.org'
EMAIL_HOST_USER = 'postmaster@mg.example.com'
EMAIL_HOST_PASSWORD = '3addbd7ae58050b57a7165d89e68ea6a-1e2c9327-dd2ef705'

AWS_STORAGE_BUCKET_NAME = 'orders-static'
AWS_S3_ACCESS_KEY_ID = 'AKIAQ6D6PAO7KNN65VUL'
AWS_S3_SECRET_ACCESS_KEY = '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'
SENTRY_DSN = 'https://ba1d7f676c849dc7fb5423cf3978321a@o329068.ingest.sentry.io/7109665'
