"""The click commands: parse arguments, hand them to a use case in reconciler/app, exit."""
