"""Persistence on DynamoDB: the only part of the API that talks to the database."""
