"""Anju e-Cards (安居e卡), the desk readers that write them, and the card jobs between them."""
