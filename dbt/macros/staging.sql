{#- Encoded requests renamed and cast, the same columns from either Spark output: ds is the request's day,
    spec_ds the day whose feature spec encoded it. -#}
{% macro encoded_requests(relation, request_day, spec_day) %}
with

source as (

    select * from {{ relation }}

),

renamed as (

    select
        -- keys
        cast(rerank_id as {{ dbt.type_string() }}) as rerank_id,
        cast(user_id as {{ dbt.type_string() }}) as user_id,
        cast(session_key as {{ dbt.type_string() }}) as session_key,
        cast(request_id as {{ dbt.type_string() }}) as request_id,
        cast(trigger as {{ dbt.type_string() }}) as trigger,
        cast(origin as {{ dbt.type_string() }}) as trigger_origin,
        cast(trigger_ts as bigint) as trigger_ts,
        cast({{ request_day }} as date) as ds,
        cast({{ spec_day }} as date) as spec_ds,

        -- model inputs: parallel lists per group, codes of spec_ds's feature spec (0 = padding)
        cast(cand_item_id as {{ edgerec.list_type('bigint') }}) as cand_item_id,
        cast(cand_category as {{ edgerec.list_type('bigint') }}) as cand_category,
        cast(cand_brand as {{ edgerec.list_type('bigint') }}) as cand_brand,
        cast(cand_gender as {{ edgerec.list_type('bigint') }}) as cand_gender,
        cast(cand_price_level as {{ edgerec.list_type('bigint') }}) as cand_price_level,
        cast(cand_age_level as {{ edgerec.list_type('bigint') }}) as cand_age_level,
        cast(cand_bc_type as {{ edgerec.list_type('bigint') }}) as cand_bc_type,
        cast(cand_ctr_score as {{ edgerec.list_type('bigint') }}) as cand_ctr_score,
        cast(cand_cvr_score as {{ edgerec.list_type('bigint') }}) as cand_cvr_score,
        cast(cand_cloud_score as {{ edgerec.list_type('bigint') }}) as cand_cloud_score,
        cast(ie_item_id as {{ edgerec.list_type('bigint') }}) as ie_item_id,
        cast(ie_category as {{ edgerec.list_type('bigint') }}) as ie_category,
        cast(ie_brand as {{ edgerec.list_type('bigint') }}) as ie_brand,
        cast(ie_gender as {{ edgerec.list_type('bigint') }}) as ie_gender,
        cast(ie_price_level as {{ edgerec.list_type('bigint') }}) as ie_price_level,
        cast(ie_age_level as {{ edgerec.list_type('bigint') }}) as ie_age_level,
        cast(ie_bc_type as {{ edgerec.list_type('bigint') }}) as ie_bc_type,
        cast(ie_ctr_score as {{ edgerec.list_type('bigint') }}) as ie_ctr_score,
        cast(ie_cvr_score as {{ edgerec.list_type('bigint') }}) as ie_cvr_score,
        cast(ie_e1_duration_ms as {{ edgerec.list_type('bigint') }}) as ie_e1_duration_ms,
        cast(ie_e2_count as {{ edgerec.list_type('bigint') }}) as ie_e2_count,
        cast(ie_e3_max_scroll_speed as {{ edgerec.list_type('bigint') }}) as ie_e3_max_scroll_speed,
        cast(ie_e4_max_scroll_duration_ms as {{ edgerec.list_type('bigint') }}) as ie_e4_max_scroll_duration_ms,
        cast(ie_e5_scroll_count as {{ edgerec.list_type('bigint') }}) as ie_e5_scroll_count,
        cast(ie_e7_age_s as {{ edgerec.list_type('bigint') }}) as ie_e7_age_s,
        cast(ie_e6_delete_reason as {{ edgerec.list_type('bigint') }}) as ie_e6_delete_reason,
        cast(ipv_item_id as {{ edgerec.list_type('bigint') }}) as ipv_item_id,
        cast(ipv_category as {{ edgerec.list_type('bigint') }}) as ipv_category,
        cast(ipv_brand as {{ edgerec.list_type('bigint') }}) as ipv_brand,
        cast(ipv_gender as {{ edgerec.list_type('bigint') }}) as ipv_gender,
        cast(ipv_price_level as {{ edgerec.list_type('bigint') }}) as ipv_price_level,
        cast(ipv_age_level as {{ edgerec.list_type('bigint') }}) as ipv_age_level,
        cast(ipv_bc_type as {{ edgerec.list_type('bigint') }}) as ipv_bc_type,
        cast(ipv_ctr_score as {{ edgerec.list_type('bigint') }}) as ipv_ctr_score,
        cast(ipv_cvr_score as {{ edgerec.list_type('bigint') }}) as ipv_cvr_score,
        cast(ipv_d1_duration_ms as {{ edgerec.list_type('bigint') }}) as ipv_d1_duration_ms,
        cast(ipv_d12_age_s as {{ edgerec.list_type('bigint') }}) as ipv_d12_age_s,
        cast(ipv_cart as {{ edgerec.list_type('bigint') }}) as ipv_cart,
        cast(ipv_buy as {{ edgerec.list_type('bigint') }}) as ipv_buy,
        cast(ipv_favorite as {{ edgerec.list_type('bigint') }}) as ipv_favorite,
        cast(ipv_comment as {{ edgerec.list_type('bigint') }}) as ipv_comment,
        cast(ipv_select_sku as {{ edgerec.list_type('bigint') }}) as ipv_select_sku,
        cast(ipv_ask as {{ edgerec.list_type('bigint') }}) as ipv_ask,
        cast(ipv_customer_service as {{ edgerec.list_type('bigint') }}) as ipv_customer_service,
        cast(ipv_detail as {{ edgerec.list_type('bigint') }}) as ipv_detail,
        cast(ipv_shop as {{ edgerec.list_type('bigint') }}) as ipv_shop,
        cast(ipv_recommendation as {{ edgerec.list_type('bigint') }}) as ipv_recommendation,
        -- labels (1 clicked, 0 not) where mask = 1, the candidates the user saw
        cast(label as {{ edgerec.list_type('bigint') }}) as label,
        cast(mask as {{ edgerec.list_type('bigint') }}) as mask,
        -- where each labelled candidate was shown (display position, 0 where mask = 0): training-only, for
        -- position-bias corrections; null in partitions written before it was added
        cast(shown_position as {{ edgerec.list_type('bigint') }}) as shown_position,
        -- what a click led to on its page view (1 carted, bought; 0 where label = 0): the cart and buy heads' labels
        cast(cart as {{ edgerec.list_type('bigint') }}) as cart,
        cast(buy as {{ edgerec.list_type('bigint') }}) as buy,
        -- event times, for point-in-time checks
        cast(ie_ts as {{ edgerec.list_type('bigint') }}) as ie_ts,
        cast(ipv_end_ts as {{ edgerec.list_type('bigint') }}) as ipv_end_ts

    from source

)

select * from renamed
{% endmacro %}
