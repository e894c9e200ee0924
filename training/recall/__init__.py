"""The cloud's recall: PWPRec-style two-tower candidate generation (eBay's page-wise personalized
recommendations) and its baselines, trained on the recall marts (fct_recall_train, fct_recall_test)."""
