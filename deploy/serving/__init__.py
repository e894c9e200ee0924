"""The cloud paging API (`edgerec serve`)."""
