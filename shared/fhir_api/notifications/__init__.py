"""Change notifications: the change stream of the clinical tables, the events it puts on the event bus,
the rest-hook Subscriptions it matches, and their delivery."""
