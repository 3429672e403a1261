"""Integration clients."""
import openai
import stripe
from slack_sdk import WebClient

OPENAI_API_KEY = "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"
stripe.api_key = "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"
SLACK_TOKEN = 'xoxp-971734181158-970826799768-5358604189967-a428dda6b8889396560ea3a644e1c81d'
SLACK_APP_TOKEN = 'xapp-1-A9W9PGUO6I4-4134342131776-7ee01c031e5fe09004f6071e95e1a29ebb116f5be9ce9841d17eef47fbc95868'
HUGGINGFACE_HUB_TOKEN = "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"

client = openai.OpenAI(api_key="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")
slack = WebClient(token=SLACK_TOKEN)

def connect():
    return psycopg2.connect(host="db", user="etl", password="oh6tv^tQsPxTkec2p^g")

DATADOG = {"api_key": "4f96f628bdd6b8e267e0b6b209dcc263", "app_key": "5dcf2bfc0391239d7b80cfae1c0d8a3d7de9ebde"}
