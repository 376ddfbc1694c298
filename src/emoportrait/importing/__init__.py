"""Importing the authors' released weights (EVP, DAN, Emotion-FAN, MicroExpSTCNN) as emoportrait runs."""
