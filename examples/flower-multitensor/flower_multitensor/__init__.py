"""flower-multitensor: a Flower App whose model travels only encrypted (hefl)."""
